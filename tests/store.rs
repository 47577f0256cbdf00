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
