//! The Cloud API call: `POST {base}/{version}/{phone_number_id}/messages` with a bearer token.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use waguard::{ContactId, ContactKey, TemplateCategory};

use crate::config::GraphConfig;

/// A template to send: its approved name, language and category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateMessage {
    /// The template's name, as approved (`order_update`).
    pub name: String,
    /// Its language code (`en_US`).
    pub language: String,
    /// Its category as approved by Meta: what the guard decides by (O2, R3, D4).
    pub category: TemplateCategory,
    /// The `components` array (parameters), passed to Meta as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Value>,
}

/// What goes out: a free-form text or a template.
#[derive(Clone, Copy, Debug)]
pub enum Message<'a> {
    /// A text message (free-form: needs an open window).
    Text(&'a str),
    /// A template (allowed outside the window, W6).
    Template(&'a TemplateMessage),
}

/// What the Cloud API answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphAnswer {
    /// The HTTP status.
    pub status: u16,
    /// `messages[0].id` of a successful send.
    pub wamid: Option<String>,
    /// `error.code` of a failed send.
    pub error_code: Option<u32>,
    /// `error.message` of a failed send.
    pub error_message: Option<String>,
}

impl GraphAnswer {
    /// Whether Meta accepted the message (a 2xx answer).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The code to feed back to the guard for a failed send: Meta's `error.code`, or `1` (service
    /// trouble, rule S2) for an HTTP 5xx without one; `None` for a success or a 4xx without a
    /// code.
    pub fn feedback_code(&self) -> Option<u32> {
        if self.is_success() {
            return None;
        }
        self.error_code
            .or((500..600).contains(&self.status).then_some(1))
    }
}

/// A Cloud API client for one app (one access token).
#[derive(Clone, Debug)]
pub struct GraphApi {
    config: GraphConfig,
    http: reqwest::Client,
}

impl GraphApi {
    /// A client with its own HTTP connection pool (rustls, 30 s timeout).
    pub fn new(config: GraphConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Self::with_client(config, http))
    }

    /// A client over an HTTP client of your own (shared pool, proxy settings, tests).
    pub fn with_client(config: GraphConfig, http: reqwest::Client) -> Self {
        GraphApi { config, http }
    }

    /// The settings.
    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    /// Sends `message` to the contact of `key` from its business number. A transport failure
    /// (no answer at all) is the `Err`; every HTTP answer, success or not, is a [`GraphAnswer`].
    pub async fn send(
        &self,
        key: &ContactKey,
        message: Message<'_>,
    ) -> Result<GraphAnswer, reqwest::Error> {
        let url = self.config.messages_url(key.business.as_str());
        let body = request_body(key, message);
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.config.access_token)
            .json(&body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(GraphAnswer {
            status,
            wamid: json
                .pointer("/messages/0/id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            error_code: json
                .pointer("/error/code")
                .and_then(Value::as_u64)
                .and_then(|c| u32::try_from(c).ok()),
            error_message: json
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// The JSON body of a send: a phone number goes in `to`, a business-scoped user id in
/// `recipient`, a group id in `to` with `recipient_type: group`.
pub fn request_body(key: &ContactKey, message: Message<'_>) -> Value {
    let mut body = json!({ "messaging_product": "whatsapp" });
    match &key.contact {
        ContactId::Phone(p) => {
            body["recipient_type"] = json!("individual");
            body["to"] = json!(p.digits());
        }
        ContactId::User(u) => {
            body["recipient_type"] = json!("individual");
            body["recipient"] = json!(u.as_str());
        }
        ContactId::Group(g) => {
            body["recipient_type"] = json!("group");
            body["to"] = json!(g.as_str());
        }
        // ContactId is non-exhaustive: a future kind goes by its textual id.
        #[allow(unreachable_patterns)]
        other => {
            body["to"] = json!(other.as_str());
        }
    }
    match message {
        Message::Text(text) => {
            body["type"] = json!("text");
            body["text"] = json!({ "body": text, "preview_url": false });
        }
        Message::Template(t) => {
            body["type"] = json!("template");
            let mut template = json!({ "name": t.name, "language": { "code": t.language } });
            if let Some(components) = &t.components {
                template["components"] = components.clone();
            }
            body["template"] = template;
        }
    }
    body
}
