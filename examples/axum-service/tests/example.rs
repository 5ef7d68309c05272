//! The example through its router (no socket): a signed webhook is ingested, the send path
//! reserves, sends and feeds Meta's refusal back; a badly signed webhook applies nothing.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use waguard::{
    CodeEffect, ContactKey, Decision, Guard, ManualClock, MemoryStore, Outgoing, Policy,
    TemplateCategory, Timestamp,
};
use waguard_example_axum::{router, send_guarded, App, Outcome};

const SECRET: &str = "app-secret-for-tests";

fn app() -> App<MemoryStore> {
    let start = Timestamp::parse_rfc3339("2026-03-01T12:00:00Z").unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let guard = Guard::with_clock(MemoryStore::new(), Policy::default(), clock).unwrap();
    App::new(guard, SECRET, "verify-token")
}

fn key() -> ContactKey {
    "106540352242922/p:33612345678".parse().unwrap()
}

/// A webhook with one inbound text from the contact, a minute before the clock's start.
fn inbound() -> Vec<u8> {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "messages": [{"from": "33612345678", "id": "wamid.in1", "timestamp": "1772366340",
                          "type": "text", "text": {"body": "hello"}}]
        }}]}]
    })
    .to_string()
    .into_bytes()
}

async fn post_webhook(app: &App<MemoryStore>, body: Vec<u8>, signature: &str) -> StatusCode {
    let request = Request::post("/webhook")
        .header("x-hub-signature-256", signature)
        .body(Body::from(body))
        .unwrap();
    router(app.clone()).oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn the_five_lines() {
    let app = app();
    let body = inbound();
    let signature = waguard_webhook::sign(&body, SECRET.as_bytes());
    assert_eq!(post_webhook(&app, body, &signature).await, StatusCode::OK);

    // The contact wrote: the window is open, free-form goes.
    let outcome = send_guarded(
        app.guard(),
        &key(),
        None,
        Some("order-42"),
        |outgoing| async move {
            assert_eq!(outgoing, Outgoing::FreeForm);
            Ok(())
        },
    )
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::Sent(Outgoing::FreeForm));

    // Meta says the window is closed (131047): the guard records it ...
    let outcome = send_guarded(app.guard(), &key(), None, None, |_| async { Err(131047) })
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Failed {
            code: 131047,
            effect: CodeEffect::WindowClosed
        }
    );

    // ... and the next send falls back to the template it was given.
    let utility = Outgoing::Template(TemplateCategory::Utility);
    let outcome = send_guarded(
        app.guard(),
        &key(),
        Some(TemplateCategory::Utility),
        None,
        |outgoing| async move {
            assert_eq!(outgoing, utility);
            Ok(())
        },
    )
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::Sent(utility));
}

#[tokio::test]
async fn a_bad_signature_applies_nothing_and_the_handshake_needs_the_token() {
    let app = app();
    let body = inbound();
    let wrong = waguard_webhook::sign(&body, b"another secret");
    assert_eq!(
        post_webhook(&app, body, &wrong).await,
        StatusCode::UNAUTHORIZED
    );

    // Nothing was ingested: the contact never wrote, so only a template may go.
    let outcome = send_guarded(app.guard(), &key(), None, None, |_| async {
        panic!("nothing may be sent")
    })
    .await
    .unwrap();
    assert!(
        matches!(outcome, Outcome::Refused(Decision::TemplateRequired { .. })),
        "{outcome:?}"
    );

    let handshake = |token: &str| {
        let uri = format!("/webhook?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=42");
        router(app.clone()).oneshot(Request::get(uri).body(Body::empty()).unwrap())
    };
    assert_eq!(
        handshake("verify-token").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        handshake("guess").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}
