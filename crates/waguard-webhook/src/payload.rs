//! Meta's webhook payloads (WhatsApp Cloud API), as serde types borrowed from the body.
//!
//! The shapes follow Meta's webhook references for the `messages` field (incoming messages and
//! status messages), `user_preferences` and `calls` (Calling API), with the business-scoped user
//! id fields added in 2026 (rule K3) and the group fields of the Groups API (rule W7):
//!
//! ```text
//! Notification { object, entry: [Entry { id, changes: [Change { field, value }] }] }
//! ChangeValue  { messaging_product, metadata { phone_number_id, .. }, contacts[],
//!                messages[], statuses[], errors[], user_preferences[], calls[] }
//! ```
//!
//! Every field is optional and lenient (rule H1): a value of an unexpected JSON type is kept as
//! its [`JsonKind`](crate::JsonKind) instead of failing the payload, unknown keys are skipped,
//! and arrays keep each element on its own, so that [`Notification::to_events`] can report a
//! malformed item with its JSON path and still apply the others. Only what waguard uses, and
//! what helps to read it, is modelled; everything else is skipped without being stored.
//! Objects that most messages lack are boxed, so a message costs little when they are absent.
//!
//! ```
//! use waguard_webhook::payload::Notification;
//! let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
//!   {"field":"messages","value":{"metadata":{"phone_number_id":"106540352242922"},
//!    "messages":[{"from":"16505551234","id":"wamid.1","timestamp":"1749416383",
//!                 "type":"text","text":{"body":"hi"}}]}}]}]}"#;
//! let n: Notification = serde_json::from_str(body).unwrap();
//! let change = n.entry.as_ref().unwrap().items()[0].get().unwrap()
//!     .changes.as_ref().unwrap().items()[0].get().unwrap();
//! assert_eq!(change.field.as_ref().unwrap().as_str(), Some("messages"));
//! ```

use crate::lenient::{lenient_struct, Arr, Obj, Value};

lenient_struct! {
    /// The whole body of one webhook POST.
    pub struct Notification<'a> {
        /// Always `whatsapp_business_account` for WhatsApp.
        object: Value<'a> = "object",
        /// One entry per WhatsApp Business Account.
        entry: Arr<Entry<'a>> = "entry",
    }
}

lenient_struct! {
    /// One WhatsApp Business Account's changes.
    pub struct Entry<'a> {
        /// The WhatsApp Business Account id.
        id: Value<'a> = "id",
        /// Unix seconds: the instant of the entry's account-level changes (T1-T3, L2).
        time: Value<'a> = "time",
        /// The changes, one per subscribed field that fired.
        changes: Arr<Change<'a>> = "changes",
    }
}

lenient_struct! {
    /// One change: a field name and its value.
    pub struct Change<'a> {
        /// `messages`, `user_preferences`, `calls`, or a field waguard ignores.
        field: Value<'a> = "field",
        /// What changed.
        value: Obj<ChangeValue<'a>> = "value",
    }
}

lenient_struct! {
    /// The value of a `messages`, `user_preferences` or `calls` change.
    pub struct ChangeValue<'a> {
        /// Always `whatsapp`.
        messaging_product: Value<'a> = "messaging_product",
        /// The business phone number the change is about.
        metadata: Obj<Metadata<'a>> = "metadata",
        /// The users the messages or statuses are about (profile, `wa_id`, `user_id`).
        contacts: Arr<Contact<'a>> = "contacts",
        /// Incoming messages (rule W1).
        messages: Arr<Message<'a>> = "messages",
        /// Status messages of outgoing messages (rules W3, W4, D1-D5, S1-S3).
        statuses: Arr<Status<'a>> = "statuses",
        /// Errors not tied to a recipient (rules S1-S3).
        errors: Arr<ErrorObject<'a>> = "errors",
        /// Marketing message preferences (rule O2).
        user_preferences: Arr<UserPreference<'a>> = "user_preferences",
        /// Calling API events (rule W1).
        calls: Arr<Call<'a>> = "calls",
        /// `message_template_status_update`: `APPROVED`, `PAUSED`, `DISABLED`, ... (T1).
        event: Value<'a> = "event",
        /// The template's name (T1, T3).
        message_template_name: Value<'a> = "message_template_name",
        /// The template's language code (T1, T3).
        message_template_language: Value<'a> = "message_template_language",
        /// The template's category, when a status update carries it (T3).
        message_template_category: Value<'a> = "message_template_category",
        /// Pause details: `title` is `FIRST_PAUSE`, `SECOND_PAUSE` or `RATE_LIMITING_PAUSE`.
        other_info: Obj<OtherInfo<'a>> = "other_info",
        /// `template_category_update`: the category before a completed change (T3).
        previous_category: Value<'a> = "previous_category",
        /// `template_category_update`: the category after a completed change (T3).
        new_category: Value<'a> = "new_category",
        /// `template_category_update`: the category of an advance notice (changes nothing).
        correct_category: Value<'a> = "correct_category",
        /// `business_capability_update`, `phone_number_quality_update`: the portfolio's
        /// messaging limit (L2).
        max_daily_conversations_per_business: Value<'a> = "max_daily_conversations_per_business",
        /// `business_capability_update`: the older per-number limit (L2).
        max_daily_conversation_per_phone: Value<'a> = "max_daily_conversation_per_phone",
        /// `phone_number_quality_update`: the number's current limit (L2).
        current_limit: Value<'a> = "current_limit",
    }
}

lenient_struct! {
    /// `other_info` of a template status update.
    pub struct OtherInfo<'a> {
        /// `FIRST_PAUSE`, `SECOND_PAUSE`, `RATE_LIMITING_PAUSE`, ...
        title: Value<'a> = "title",
        /// Human-readable description.
        description: Value<'a> = "description",
    }
}

lenient_struct! {
    /// The business phone number of a change.
    pub struct Metadata<'a> {
        /// The number as displayed.
        display_phone_number: Value<'a> = "display_phone_number",
        /// The business phone number id: the business of every key (rule K4).
        phone_number_id: Value<'a> = "phone_number_id",
    }
}

lenient_struct! {
    /// A user named by a change (`contacts[]`).
    pub struct Contact<'a> {
        /// The user's phone number; absent for some users who adopted a username (K3).
        wa_id: Value<'a> = "wa_id",
        /// The business-scoped user id (K3).
        user_id: Value<'a> = "user_id",
        /// The portfolio-wide parent BSUID (K3).
        parent_user_id: Value<'a> = "parent_user_id",
        /// Name and username.
        profile: Obj<Profile<'a>> = "profile",
    }
}

lenient_struct! {
    /// A user's profile.
    pub struct Profile<'a> {
        /// Display name.
        name: Value<'a> = "name",
        /// Username, for users who adopted one.
        username: Value<'a> = "username",
    }
}

lenient_struct! {
    /// An incoming message, of any type (text, image, audio, video, document, sticker,
    /// interactive, button, reaction, location, contacts, order, system, unsupported, and types
    /// Meta adds later).
    pub struct Message<'a> {
        /// The sender's phone number; absent for some users who adopted a username (K3).
        from: Value<'a> = "from",
        /// The sender's business-scoped user id (K3).
        from_user_id: Value<'a> = "from_user_id",
        /// The sender's parent BSUID (K3).
        from_parent_user_id: Value<'a> = "from_parent_user_id",
        /// Set for a message written in a group (W7): the group's id.
        group_id: Value<'a> = "group_id",
        /// The message id (`wamid.…`).
        id: Value<'a> = "id",
        /// Unix seconds, as a string.
        timestamp: Value<'a> = "timestamp",
        /// The message type.
        r#type: Value<'a> = "type",
        /// `type: text`.
        text: Obj<Text<'a>> = "text",
        /// `type: button`: a quick-reply button of a template.
        button: Obj<Button<'a>> = "button",
        /// `type: interactive`: a reply button or list row.
        interactive: Obj<Box<Interactive<'a>>> = "interactive",
        /// `type: reaction`.
        reaction: Obj<Box<Reaction<'a>>> = "reaction",
        /// `type: image`.
        image: Obj<Box<Media<'a>>> = "image",
        /// `type: audio`.
        audio: Obj<Box<Media<'a>>> = "audio",
        /// `type: video`.
        video: Obj<Box<Media<'a>>> = "video",
        /// `type: document`.
        document: Obj<Box<Media<'a>>> = "document",
        /// `type: sticker`.
        sticker: Obj<Box<Media<'a>>> = "sticker",
        /// `type: location`.
        location: Obj<Box<Location<'a>>> = "location",
        /// `type: contacts` (shared contact cards; contents skipped).
        contacts: Value<'a> = "contacts",
        /// `type: order` (contents skipped).
        order: Value<'a> = "order",
        /// `type: system` (a number or user id change; not an inbound message, W1).
        system: Obj<Box<System<'a>>> = "system",
        /// Set when the message came from a click-to-WhatsApp ad or Page button (W5).
        referral: Obj<Box<Referral<'a>>> = "referral",
        /// The message this one replies to.
        context: Obj<Context<'a>> = "context",
        /// Why Meta could not read the message (`type: unsupported`); not a send failure.
        errors: Arr<ErrorObject<'a>> = "errors",
    }
}

lenient_struct! {
    /// The body of a text message.
    pub struct Text<'a> {
        /// The text the user wrote.
        body: Value<'a> = "body",
    }
}

lenient_struct! {
    /// A quick-reply button press on a template.
    pub struct Button<'a> {
        /// The button's label, as the user saw it.
        text: Value<'a> = "text",
        /// The payload the business set on the button.
        payload: Value<'a> = "payload",
    }
}

lenient_struct! {
    /// An interactive reply.
    pub struct Interactive<'a> {
        /// `button_reply`, `list_reply`, `nfm_reply`, ...
        r#type: Value<'a> = "type",
        /// The reply button chosen.
        button_reply: Obj<Reply<'a>> = "button_reply",
        /// The list row chosen.
        list_reply: Obj<Reply<'a>> = "list_reply",
    }
}

lenient_struct! {
    /// A chosen reply button or list row.
    pub struct Reply<'a> {
        /// The id the business gave it.
        id: Value<'a> = "id",
        /// Its title.
        title: Value<'a> = "title",
        /// Its description (list rows).
        description: Value<'a> = "description",
    }
}

lenient_struct! {
    /// A reaction to a message.
    pub struct Reaction<'a> {
        /// The message reacted to.
        message_id: Value<'a> = "message_id",
        /// The emoji; absent when a reaction is removed.
        emoji: Value<'a> = "emoji",
    }
}

lenient_struct! {
    /// An image, audio, video, document or sticker.
    pub struct Media<'a> {
        /// The media id.
        id: Value<'a> = "id",
        /// MIME type.
        mime_type: Value<'a> = "mime_type",
        /// Caption (images, videos, documents).
        caption: Value<'a> = "caption",
    }
}

lenient_struct! {
    /// A shared location.
    pub struct Location<'a> {
        /// Latitude.
        latitude: Value<'a> = "latitude",
        /// Longitude.
        longitude: Value<'a> = "longitude",
        /// Place name.
        name: Value<'a> = "name",
    }
}

lenient_struct! {
    /// A system message.
    pub struct System<'a> {
        /// `user_changed_number`, `user_changed_user_id`, ...
        r#type: Value<'a> = "type",
        /// Human-readable description.
        body: Value<'a> = "body",
        /// The new phone number, for `user_changed_number`.
        wa_id: Value<'a> = "wa_id",
        /// The new phone number in older payloads.
        new_wa_id: Value<'a> = "new_wa_id",
    }
}

lenient_struct! {
    /// Where a conversation came from: a click-to-WhatsApp ad or Page button (W5).
    pub struct Referral<'a> {
        /// `ad`, `post`, ...
        source_type: Value<'a> = "source_type",
        /// The ad or post id.
        source_id: Value<'a> = "source_id",
        /// The ad or post URL.
        source_url: Value<'a> = "source_url",
        /// The click-to-WhatsApp click id: its presence makes the inbound a referral (W5).
        ctwa_clid: Value<'a> = "ctwa_clid",
    }
}

lenient_struct! {
    /// The message a message replies to.
    pub struct Context<'a> {
        /// Its sender.
        from: Value<'a> = "from",
        /// Its id.
        id: Value<'a> = "id",
    }
}

lenient_struct! {
    /// A status message: what happened to one outgoing message.
    pub struct Status<'a> {
        /// The outgoing message's id (`wamid.…`).
        id: Value<'a> = "id",
        /// `sent`, `delivered`, `read`, `failed`, or a status waguard ignores (`played`, ...).
        status: Value<'a> = "status",
        /// Unix seconds, as a string.
        timestamp: Value<'a> = "timestamp",
        /// The recipient's phone number, or the group id when `recipient_type` is `group`.
        recipient_id: Value<'a> = "recipient_id",
        /// `group` for a message sent to a group (W7); absent otherwise.
        recipient_type: Value<'a> = "recipient_type",
        /// The group participant a per-participant status is about.
        recipient_participant_id: Value<'a> = "recipient_participant_id",
        /// The recipient's business-scoped user id (K3).
        recipient_user_id: Value<'a> = "recipient_user_id",
        /// The recipient's parent BSUID (K3).
        recipient_parent_user_id: Value<'a> = "recipient_parent_user_id",
        /// The conversation the message was billed in (older API versions).
        conversation: Obj<Box<Conversation<'a>>> = "conversation",
        /// How the message is priced: its category tells a template was sent (W3).
        pricing: Obj<Pricing<'a>> = "pricing",
        /// Why the message failed (`status: failed`).
        errors: Arr<ErrorObject<'a>> = "errors",
    }
}

lenient_struct! {
    /// A billing conversation.
    pub struct Conversation<'a> {
        /// Its id.
        id: Value<'a> = "id",
        /// When it expires (Unix seconds).
        expiration_timestamp: Value<'a> = "expiration_timestamp",
        /// What opened it.
        origin: Obj<Origin<'a>> = "origin",
    }
}

lenient_struct! {
    /// What opened a billing conversation.
    pub struct Origin<'a> {
        /// `marketing`, `utility`, `authentication`, `service`, `referral_conversion`, ...
        r#type: Value<'a> = "type",
    }
}

lenient_struct! {
    /// How an outgoing message is priced.
    pub struct Pricing<'a> {
        /// Whether it is billed.
        billable: Value<'a> = "billable",
        /// `PMP`, `CBP`, ...
        pricing_model: Value<'a> = "pricing_model",
        /// `regular`, `free_customer_service`, `free_entry_point`, ...
        r#type: Value<'a> = "type",
        /// `marketing`, `marketing_lite`, `utility`, `authentication`,
        /// `authentication_international`, `service`, `referral_conversion`, ...
        category: Value<'a> = "category",
    }
}

lenient_struct! {
    /// An error object, in `statuses[].errors[]`, value-level `errors[]` or
    /// `messages[].errors[]`.
    pub struct ErrorObject<'a> {
        /// Meta's error code, an integer (sometimes written as a string).
        code: Value<'a> = "code",
        /// Short title.
        title: Value<'a> = "title",
        /// Message.
        message: Value<'a> = "message",
        /// More details.
        error_data: Obj<ErrorData<'a>> = "error_data",
    }
}

lenient_struct! {
    /// Details of an error.
    pub struct ErrorData<'a> {
        /// What went wrong, in words.
        details: Value<'a> = "details",
    }
}

lenient_struct! {
    /// A `user_preferences` item: a user stopped or resumed marketing messages (O2).
    pub struct UserPreference<'a> {
        /// The user's phone number.
        wa_id: Value<'a> = "wa_id",
        /// The user's business-scoped user id (K3).
        user_id: Value<'a> = "user_id",
        /// The user's parent BSUID (K3).
        parent_user_id: Value<'a> = "parent_user_id",
        /// Human-readable description.
        detail: Value<'a> = "detail",
        /// `marketing_messages` (others are ignored).
        category: Value<'a> = "category",
        /// `stop` or `resume` (others are ignored).
        value: Value<'a> = "value",
        /// Unix seconds, as an integer.
        timestamp: Value<'a> = "timestamp",
    }
}

lenient_struct! {
    /// A Calling API event (`calls` field).
    pub struct Call<'a> {
        /// The call id (`wacid.…`).
        id: Value<'a> = "id",
        /// The caller: the user's phone number for a user-initiated call.
        from: Value<'a> = "from",
        /// The caller's business-scoped user id (K3).
        from_user_id: Value<'a> = "from_user_id",
        /// The caller's parent BSUID (K3).
        from_parent_user_id: Value<'a> = "from_parent_user_id",
        /// The callee.
        to: Value<'a> = "to",
        /// `connect`, `terminate`, ...
        event: Value<'a> = "event",
        /// `USER_INITIATED` or `BUSINESS_INITIATED`.
        direction: Value<'a> = "direction",
        /// Unix seconds.
        timestamp: Value<'a> = "timestamp",
        /// `COMPLETED`, `FAILED`, ... (on `terminate`).
        status: Value<'a> = "status",
    }
}
