//! `wss://` on both sides, with a certificate made at test time.

use std::sync::Arc;
use std::time::Duration;

use protolink::ws::{WsServer, connect};
use protolink::{RemoteError, Session};
use protolink_protocols::litecord_example::{self as lc, ClientSender, Guild};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Guilds;
impl lc::ServerHandler for Guilds {
    async fn get_guild(&self, request: lc::GetGuild) -> Result<Guild, RemoteError> {
        Ok(Guild {
            id: request.guild_id,
            name: "secure".into(),
            owner_id: "1".into(),
            member_count: 1,
        })
    }
}

struct NoTokens;
impl lc::ClientHandler for NoTokens {
    async fn token_validate(
        &self,
        _request: lc::TokenValidate,
    ) -> Result<lc::TokenValidity, RemoteError> {
        Err(RemoteError::new("no"))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[tokio::test]
async fn wss_round_trip_with_a_test_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));

    let server_tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let server = WsServer::<lc::Server>::bind("127.0.0.1:0")
        .await
        .unwrap()
        .tls(Arc::new(server_tls));
    let url = format!("wss://{}/", server.local_addr().unwrap());
    let (_shutdown, _task) = server
        .serve(Session::new().with(lc::Hello { hb_interval: 1000 }), |_| {
            Guilds
        });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let session = Session::new().with(lc::HelloAck {
        password: "x".into(),
    });
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        connect::<lc::Client>(&url)
            .tls(Arc::new(client_tls))
            .session(session)
            .handler(|_| NoTokens),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(client.get_guild("9".into()).await.unwrap().name, "secure");

    // A client that does not trust the certificate cannot connect.
    let untrusting = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let session = Session::new().with(lc::HelloAck {
        password: "x".into(),
    });
    let refused = connect::<lc::Client>(&url)
        .tls(Arc::new(untrusting))
        .session(session)
        .handler(|_| NoTokens)
        .await;
    assert!(refused.is_err());
}
