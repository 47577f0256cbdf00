//! Kubernetes protobuf request bodies against a real `orkops-master`: the real kubectl's
//! generator commands (which send `application/vnd.kubernetes.protobuf`), each read back with
//! `kubectl get -o json`; raw protobuf bodies encoded with the `k8s-pb` crate (an unknown field
//! under Strict and Warn, DeleteOptions, a Scale); and a media type the server does not take.
//! The kubectl test is skipped with a message where no kubectl is installed.

mod common;

use std::path::Path;

use common::kube::{have_kubectl, kubeconfig, kubectl};
use common::Master;
use k8s_pb::api::autoscaling::v1 as autoscaling;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use serde_json::{json, Value};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

fn ok(config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(config, args);
    assert!(ok, "kubectl {args:?} failed:\n{out}{err}");
    out
}

fn get(config: &Path, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend(what);
    args.extend(["-o", "json"]);
    serde_json::from_str(&ok(config, &args)).unwrap()
}

#[test]
fn kubectl_generator_commands_create_through_protobuf() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&m, dir.path());

    // -v=8 shows the request: the body really is protobuf
    let (ok_, out, err) = kubectl(
        &config,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=2",
            "-v=8",
        ],
    );
    assert!(ok_, "{out}{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("Content-Type") && l.contains(PROTOBUF)),
        "kubectl did not send protobuf:\n{err}"
    );
    let d = get(&config, &["deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 2, "{d}");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web", "{d}");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (c["name"].as_str(), c["image"].as_str()),
        (Some("nginx"), Some("nginx")),
        "{d}"
    );

    // replicas 0 is sent as a present zero, not as unset (which defaults to 1)
    ok(
        &config,
        &[
            "create",
            "deployment",
            "idle",
            "--image=nginx",
            "--replicas=0",
        ],
    );
    assert_eq!(get(&config, &["deployment", "idle"])["spec"]["replicas"], 0);

    ok(&config, &["create", "namespace", "pb-ns"]);
    assert_eq!(
        get(&config, &["namespace", "pb-ns"])["metadata"]["name"],
        "pb-ns"
    );

    ok(
        &config,
        &[
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "--from-literal=b=two",
        ],
    );
    assert_eq!(
        get(&config, &["configmap", "cfg"])["data"],
        json!({"a": "1", "b": "two"})
    );

    ok(
        &config,
        &[
            "create",
            "secret",
            "generic",
            "sec",
            "--from-literal=pw=s3cret",
        ],
    );
    let s = get(&config, &["secret", "sec"]);
    assert_eq!(s["data"], json!({"pw": "czNjcmV0"}), "{s}");
    assert_eq!(s["type"], "Opaque", "{s}");

    ok(
        &config,
        &[
            "create",
            "job",
            "once",
            "--image=busybox",
            "--",
            "echo",
            "hi",
        ],
    );
    let j = get(&config, &["job", "once"]);
    let c = &j["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"], json!(["echo", "hi"]), "{j}");
    assert_eq!(
        j["spec"]["template"]["spec"]["restartPolicy"], "Never",
        "{j}"
    );

    ok(
        &config,
        &[
            "create",
            "cronjob",
            "tick",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "--",
            "date",
        ],
    );
    let cj = get(&config, &["cronjob", "tick"]);
    assert_eq!(cj["spec"]["schedule"], "*/5 * * * *", "{cj}");
    let c = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"], json!(["date"]), "{cj}");

    ok(&config, &["create", "serviceaccount", "robot"]);
    assert_eq!(
        get(&config, &["serviceaccount", "robot"])["metadata"]["name"],
        "robot"
    );

    ok(
        &config,
        &[
            "run",
            "solo",
            "--image=nginx",
            "--port=80",
            "--labels=app=solo,tier=x",
        ],
    );
    let p = get(&config, &["pod", "solo"]);
    assert_eq!(
        p["metadata"]["labels"],
        json!({"app": "solo", "tier": "x"}),
        "{p}"
    );
    let c = &p["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx", "{p}");
    assert_eq!(c["ports"][0]["containerPort"], 80, "{p}");

    ok(
        &config,
        &[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--target-port=8080",
        ],
    );
    let svc = get(&config, &["service", "web"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80, "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080, "{svc}");
    assert_eq!(svc["spec"]["selector"], json!({"app": "web"}), "{svc}");
}

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        ..Default::default()
    };
    [&b"k8s\0"[..], &unknown.encode_to_vec()].concat()
}

fn configmap(name: &str) -> Vec<u8> {
    core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        }),
        data: [("k".to_string(), "v".to_string())].into_iter().collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

struct Raw {
    http: common::Http,
    token: String,
}

impl Raw {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value, Vec<String>) {
        let accept = format!("{PROTOBUF}, application/json");
        self.http
            .send(method, path, &self.token, content_type, Some(&accept), body)
            .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_protobuf_bodies_unknown_fields_delete_options_scale_and_415() {
    let m = Master::start();
    let raw = Raw {
        http: m.http(),
        token: m.admin_token(),
    };
    use reqwest::Method;
    let cms = "/api/v1/namespaces/default/configmaps";

    // a field number Kubernetes does not define: Strict (the default) refuses it by path and
    // creates nothing; Warn creates and names it in a Warning
    let mut body = configmap("odd");
    body.extend([0x98, 0x06, 0x01]); // field 99, varint 1
    let (code, v, _) = raw
        .send(
            Method::POST,
            cms,
            PROTOBUF,
            envelope("v1", "ConfigMap", body.clone()),
        )
        .await;
    assert_eq!(code, 400, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("strict decoding error") && msg.contains("<protobuf field 99>"),
        "{msg}"
    );
    let (code, _, _) = raw
        .send(Method::GET, &format!("{cms}/odd"), "", vec![])
        .await;
    assert_eq!(code, 404);
    let (code, v, warnings) = raw
        .send(
            Method::POST,
            &format!("{cms}?fieldValidation=Warn"),
            PROTOBUF,
            envelope("v1", "ConfigMap", body),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["data"], json!({"k": "v"}), "{v}");
    assert!(
        warnings.iter().any(|w| w.contains("<protobuf field 99>")),
        "{warnings:?}"
    );

    // a replace in protobuf
    let (code, v, _) = raw
        .send(Method::GET, &format!("{cms}/odd"), "", vec![])
        .await;
    assert_eq!(code, 200, "{v}");
    let uid = v["metadata"]["uid"].as_str().unwrap().to_string();
    let mut cm = core::ConfigMap::decode(&configmap("odd")[..]).unwrap();
    cm.data.insert("k".into(), "w".into());
    let (code, v, _) = raw
        .send(
            Method::PUT,
            &format!("{cms}/odd"),
            PROTOBUF,
            envelope("v1", "ConfigMap", cm.encode_to_vec()),
        )
        .await;
    assert_eq!((code, &v["data"]["k"]), (200, &json!("w")), "{v}");

    // DeleteOptions as typed clients send them: a wrong uid precondition is a conflict
    let opts = |uid: &str| meta::DeleteOptions {
        preconditions: Some(meta::Preconditions {
            uid: Some(uid.into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let (code, v, _) = raw
        .send(
            Method::DELETE,
            &format!("{cms}/odd"),
            PROTOBUF,
            envelope("v1", "DeleteOptions", opts("not-the-uid").encode_to_vec()),
        )
        .await;
    assert_eq!(code, 409, "{v}");
    let (code, v, _) = raw
        .send(
            Method::DELETE,
            &format!("{cms}/odd"),
            PROTOBUF,
            envelope("v1", "DeleteOptions", opts(&uid).encode_to_vec()),
        )
        .await;
    assert_eq!(code, 200, "{v}");

    // a Scale in protobuf sets a Deployment's replicas
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "sc"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "sc"}},
                 "template": {"metadata": {"labels": {"app": "sc"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let deps = "/apis/apps/v1/namespaces/default/deployments";
    let (code, v, _) = raw
        .send(
            Method::POST,
            deps,
            "application/json",
            deploy.to_string().into_bytes(),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let scale = autoscaling::Scale {
        metadata: Some(meta::ObjectMeta {
            name: Some("sc".into()),
            namespace: Some("default".into()),
            ..Default::default()
        }),
        spec: Some(autoscaling::ScaleSpec { replicas: Some(4) }),
        status: None,
    };
    let (code, v, _) = raw
        .send(
            Method::PUT,
            &format!("{deps}/sc/scale"),
            PROTOBUF,
            envelope("autoscaling/v1", "Scale", scale.encode_to_vec()),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let (_, v, _) = raw
        .send(Method::GET, &format!("{deps}/sc"), "", vec![])
        .await;
    assert_eq!(v["spec"]["replicas"], 4, "{v}");

    // YAML is taken too, as kube-apiserver takes it
    let (code, v, _) = raw
        .send(
            Method::POST,
            cms,
            "application/yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-yaml}\ndata: {a: b}\n"
                .to_vec(),
        )
        .await;
    assert_eq!((code, &v["data"]), (201, &json!({"a": "b"})), "{v}");

    // a media type the server does not take is 415 naming what it takes; so is a protobuf
    // message it does not decode
    for ct in ["application/cbor", "text/plain"] {
        let (code, v, _) = raw.send(Method::POST, cms, ct, b"{}".to_vec()).await;
        assert_eq!(code, 415, "{ct}: {v}");
        assert_eq!(v["reason"], "UnsupportedMediaType", "{v}");
        let msg = v["message"].as_str().unwrap();
        assert!(
            msg.contains("accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"),
            "{msg}"
        );
    }
    let (code, v, _) = raw
        .send(
            Method::POST,
            "/api/v1/namespaces/default/pods/x/binding",
            PROTOBUF,
            envelope("v1", "Binding", vec![]),
        )
        .await;
    assert_eq!(code, 415, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("Binding of v1"),
        "{v}"
    );
    // a broken body is 400 saying where
    let (code, v, _) = raw
        .send(Method::POST, cms, PROTOBUF, b"k8s\0\x0a\x7f".to_vec())
        .await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("protobuf body is not valid"),
        "{v}"
    );
}
