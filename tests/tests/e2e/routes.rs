//! One path, several sides: `WsServer::serve_routes` makes each connection the link its peer's
//! first handshake message chose (the Clusterio master's controls and slaves).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protolink::ws::{Routes, WsServer, connect};
use protolink::{Link, LinkConfig, LinkState, Session};
use protolink_protocols::clusterio::{
    self as cl, ControlWithMasterSender, MasterWithControl, MasterWithSlave,
};
use tokio_tungstenite::tungstenite::Message as Ws;

const WAIT: Duration = Duration::from_secs(10);

/// The slaves registered so far, by the id of the link they registered on.
type Registry = Arc<Mutex<BTreeMap<u64, cl::RegisterSlave>>>;

/// Which route each connection took, in order.
type Taken = Arc<Mutex<Vec<&'static str>>>;

async fn master(config: LinkConfig) -> (String, protolink::ws::ShutdownHandle, Registry, Taken) {
    let registry = Registry::default();
    let taken = Taken::default();
    let hello = cl::Hello {
        version: "test".into(),
    };
    let control = Session::<MasterWithControl>::new()
        .with(hello.clone())
        .authenticate(|r: cl::RegisterControl| async move {
            if r.token == "control" {
                Ok(())
            } else {
                Err("Authentication failed".to_owned())
            }
        });
    let slave = Session::new().with(hello).authenticate_link({
        let registry = registry.clone();
        move |link: Link<MasterWithSlave>, r: cl::RegisterSlave| {
            let registry = registry.clone();
            async move {
                registry.lock().unwrap().insert(link.id(), r);
                Ok(())
            }
        }
    });
    let server = WsServer::<MasterWithControl>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .path("/api/socket")
        .link_config(config);
    let url = format!("ws://{}/api/socket", server.local_addr().unwrap());
    let (as_control, as_slave) = (taken.clone(), taken.clone());
    let routes = Routes::new()
        .route(control, move |_| as_control.lock().unwrap().push("control"))
        .route(slave, move |_| as_slave.lock().unwrap().push("slave"));
    let (shutdown, _task) = server.serve_routes(routes);
    (url, shutdown, registry, taken)
}

fn registration(id: i64) -> cl::RegisterSlave {
    cl::RegisterSlave {
        token: "any".into(),
        agent: "test".into(),
        version: "test".into(),
        name: format!("slave {id}"),
        id,
    }
}

#[tokio::test]
async fn controls_and_slaves_share_one_path() {
    let (url, _shutdown, registry, taken) = master(LinkConfig::default()).await;
    let slave = connect::<cl::SlaveWithMaster>(&url)
        .session(Session::new().with(registration(7)))
        .await
        .unwrap();
    assert_eq!(slave.state(), LinkState::Ready);
    let control = connect::<cl::ControlWithMaster>(&url)
        .session(Session::new().with(cl::RegisterControl {
            token: "control".into(),
            agent: "test".into(),
            version: "test".into(),
        }))
        .await
        .unwrap();
    // A control's request on a control link: answered (by `()`, with an error), where a slave
    // link would close at an unknown message.
    let answer = control.list_slaves(cl::ListSlaves {}).await;
    assert!(
        matches!(answer, Err(protolink::RequestError::Remote(_))),
        "{answer:?}"
    );
    assert_eq!(control.state(), LinkState::Ready);
    assert_eq!(*taken.lock().unwrap(), ["slave", "control"]);
    // The slave's route authenticated on the slave's own link.
    let registered: Vec<i64> = registry.lock().unwrap().values().map(|r| r.id).collect();
    assert_eq!(registered, [7]);

    // A refused registration closes as the chosen route's session says.
    let refused = connect::<cl::ControlWithMaster>(&url)
        .session(Session::new().with(cl::RegisterControl {
            token: "wrong".into(),
            agent: "test".into(),
            version: "test".into(),
        }))
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

/// The next frame as JSON, or the close code.
async fn next(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Result<serde_json::Value, Option<u16>> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Ws::Text(t))) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Ws::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

#[tokio::test]
async fn a_connection_no_route_takes_is_refused_as_the_protocol_says() {
    let config = LinkConfig {
        handshake_timeout: Duration::from_millis(300),
        ..LinkConfig::default()
    };
    let (url, _shutdown, _, _) = master(config).await;

    // The greeting comes first, numbered as the link numbers it, then the refusal.
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(
        next(&mut ws).await.unwrap(),
        serde_json::json!({"seq": 1, "type": "hello", "data": {"version": "test"}})
    );
    ws.send(Ws::text(
        r#"{"seq":1,"type":"list_slaves_request","data":{}}"#,
    ))
    .await
    .unwrap();
    assert_eq!(
        next(&mut ws).await.unwrap(),
        serde_json::json!({"seq": 2, "type": "close", "data": {"reason": "Invalid handshake"}})
    );

    // Silence: the handshake timeout counts from the connection, not from the choice.
    let (mut silent, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(next(&mut silent).await.unwrap()["type"], "hello");
    let closed = loop {
        match next(&mut silent).await {
            Ok(frame) => assert_eq!(frame["type"], "close", "{frame}"),
            Err(code) => break code,
        }
    };
    assert!(closed.is_some(), "a close frame, not a dropped connection");
}
