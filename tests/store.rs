//! The etcd store keeps the store contract (CAS, conflicts, ordered watch with previous values)
//! against a real etcd.

mod common;

#[tokio::test]
async fn etcd_store_keeps_the_store_contract() {
    let etcd = common::etcd();
    let store = orkops::store::EtcdStore::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .expect("etcd answers");
    let prefix = format!("/orkops-store-test-{}", uuid::Uuid::new_v4());
    orkops::store::contract::check(&store, &prefix).await;
    store.delete_prefix(&prefix).await.unwrap();
    let (left, _) = orkops::store::Store::list(&store, &prefix).await.unwrap();
    assert!(left.is_empty());
}

#[tokio::test]
async fn an_unreachable_etcd_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = match orkops::store::EtcdStore::connect(&[format!("http://127.0.0.1:{port}")]).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("nothing listens on port {port}"),
    };
    assert!(
        err.contains("cannot reach etcd") && err.contains(&port.to_string()),
        "{err}"
    );
}

/// A TCP forwarder to `target` that can be cut: its listener and every connection close, as
/// when an etcd member's machine goes away.
struct Forwarder {
    port: u16,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Forwarder {
    async fn start(target: String) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let target = target.clone();
                let copy = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                    }
                });
                t.lock().unwrap().push(copy);
            }
        });
        tasks.lock().unwrap().push(accept);
        Forwarder { port, tasks }
    }

    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test]
async fn losing_one_etcd_endpoint_fails_no_request() {
    use orkops::store::Store;
    let etcd = common::etcd();
    let member = Forwarder::start(etcd.endpoint.trim_start_matches("http://").to_string()).await;
    let store = orkops::store::EtcdStore::connect(&[
        etcd.endpoint.clone(),
        format!("http://127.0.0.1:{}", member.port),
    ])
    .await
    .unwrap();
    let prefix = format!("/orkops-store-test-{}", uuid::Uuid::new_v4());
    for i in 0..20 {
        store
            .create(&format!("{prefix}/k{i}"), b"v".to_vec())
            .await
            .unwrap();
    }
    member.cut();
    // (a read first: the request that meets the cut connection itself may have been sent,
    // and only reads are tried again then)
    let mut failed = Vec::new();
    for round in 0..10 {
        for i in 0..20 {
            let key = format!("{prefix}/k{i}");
            match store.get(&key).await {
                Ok(Some(v)) => {
                    if let Err(e) = store
                        .update(&key, format!("{round}").into_bytes(), v.revision)
                        .await
                    {
                        failed.push(format!("update {key}: {e}"));
                    }
                }
                Ok(None) => failed.push(format!("{key} is gone")),
                Err(e) => failed.push(format!("get {key}: {e}")),
            }
        }
        if let Err(e) = store.list(&prefix).await {
            failed.push(format!("list: {e}"));
        }
    }
    store.delete_prefix(&prefix).await.unwrap();
    assert!(
        failed.is_empty(),
        "{} requests failed: {failed:#?}",
        failed.len()
    );
}
