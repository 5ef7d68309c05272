//! The text of every statement, with the schema name filled in.

/// The SQL of every statement, with the schema name filled in (the keys of the statement
/// cache).
pub(crate) struct Sql {
    pub(crate) read: String,
    pub(crate) load: String,
    pub(crate) load_sender: String,
    pub(crate) all_senders: String,
    pub(crate) insert_contact: String,
    pub(crate) update_contact: String,
    pub(crate) delete_contact: String,
    pub(crate) remove_contact: String,
    pub(crate) insert_sender: String,
    pub(crate) update_sender: String,
    pub(crate) delete_sender: String,
    pub(crate) lock_contacts: String,
    pub(crate) lock_senders: String,
    pub(crate) read_senders: String,
    pub(crate) batch_update_contacts: String,
    pub(crate) batch_insert_contacts: String,
    pub(crate) batch_delete_contacts: String,
    pub(crate) batch_update_senders: String,
    pub(crate) batch_insert_senders: String,
    pub(crate) batch_delete_senders: String,
    pub(crate) scan_first: String,
    pub(crate) scan_next: String,
    pub(crate) registry_lock: String,
    pub(crate) registry_read: String,
    pub(crate) registry_read_many: String,
    pub(crate) registry_upsert: String,
    pub(crate) registry_delete: String,
    pub(crate) insert_contacts_or_fail: String,
    pub(crate) read_with_registries: String,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) put_contact: String,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) put_sender: String,
}

impl Sql {
    pub(crate) fn new(schema: &str) -> Self {
        let s = format!("\"{schema}\"");
        let next = format!("nextval('{s}.record_version')");
        Sql {
            read: format!(
                "SELECT (SELECT state FROM {s}.contacts WHERE business = $1 AND contact = $2),
                        (SELECT state FROM {s}.senders WHERE business = $1)"
            ),
            load: format!(
                "SELECT c.state, c.version, s.state FROM (SELECT 1) AS one
                 LEFT JOIN {s}.contacts c ON c.business = $1 AND c.contact = $2
                 LEFT JOIN {s}.senders s ON s.business = $1"
            ),
            load_sender: format!("SELECT state, version FROM {s}.senders WHERE business = $1"),
            all_senders: format!("SELECT business, state FROM {s}.senders ORDER BY business"),
            insert_contact: format!(
                "INSERT INTO {s}.contacts (business, contact, state, version)
                 VALUES ($1, $2, $3, {next}) ON CONFLICT DO NOTHING"
            ),
            update_contact: format!(
                "UPDATE {s}.contacts SET state = $3, version = {next}, updated_at = now()
                 WHERE business = $1 AND contact = $2 AND version = $4"
            ),
            delete_contact: format!(
                "DELETE FROM {s}.contacts WHERE business = $1 AND contact = $2 AND version = $3"
            ),
            remove_contact: format!(
                "DELETE FROM {s}.contacts WHERE business = $1 AND contact = $2"
            ),
            insert_sender: format!(
                "INSERT INTO {s}.senders (business, state, version)
                 VALUES ($1, $2, {next}) ON CONFLICT DO NOTHING"
            ),
            update_sender: format!(
                "UPDATE {s}.senders SET state = $2, version = {next}, updated_at = now()
                 WHERE business = $1 AND version = $3"
            ),
            delete_sender: format!(
                "DELETE FROM {s}.senders WHERE business = $1 AND version = $2"
            ),
            lock_contacts: format!(
                "SELECT c.business, c.contact, c.state FROM {s}.contacts c
                 JOIN unnest($1::text[], $2::text[]) AS k(business, contact)
                   ON c.business = k.business AND c.contact = k.contact
                 ORDER BY c.business, c.contact FOR UPDATE OF c"
            ),
            lock_senders: format!(
                "SELECT business, state FROM {s}.senders WHERE business = ANY($1::text[])
                 ORDER BY business FOR UPDATE"
            ),
            read_senders: format!(
                "SELECT business, state FROM {s}.senders WHERE business = ANY($1::text[])"
            ),
            batch_update_contacts: format!(
                "UPDATE {s}.contacts c SET state = u.state, version = {next}, updated_at = now()
                 FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(business, contact, state)
                 WHERE c.business = u.business AND c.contact = u.contact"
            ),
            batch_insert_contacts: format!(
                "INSERT INTO {s}.contacts (business, contact, state, version)
                 SELECT u.business, u.contact, u.state, {next}
                 FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(business, contact, state)
                 ORDER BY 1, 2
                 ON CONFLICT DO NOTHING"
            ),
            batch_delete_contacts: format!(
                "DELETE FROM {s}.contacts c USING unnest($1::text[], $2::text[]) AS u(business, contact)
                 WHERE c.business = u.business AND c.contact = u.contact"
            ),
            batch_update_senders: format!(
                "UPDATE {s}.senders r SET state = u.state, version = {next}, updated_at = now()
                 FROM unnest($1::text[], $2::bytea[]) AS u(business, state)
                 WHERE r.business = u.business"
            ),
            batch_insert_senders: format!(
                "INSERT INTO {s}.senders (business, state, version)
                 SELECT u.business, u.state, {next}
                 FROM unnest($1::text[], $2::bytea[]) AS u(business, state)
                 ORDER BY 1
                 ON CONFLICT DO NOTHING"
            ),
            batch_delete_senders: format!(
                "DELETE FROM {s}.senders r WHERE r.business = ANY($1::text[])"
            ),
            scan_first: format!(
                "SELECT business, contact, state FROM {s}.contacts
                 ORDER BY business, contact LIMIT $1"
            ),
            scan_next: format!(
                "SELECT business, contact, state FROM {s}.contacts
                 WHERE (business, contact) > ($1, $2)
                 ORDER BY business, contact LIMIT $3"
            ),
            registry_lock: "SELECT pg_advisory_xact_lock($1)".to_owned(),
            registry_read: format!("SELECT state FROM {s}.registry WHERE key = $1"),
            registry_read_many: format!("SELECT key, state FROM {s}.registry WHERE key = ANY($1)"),
            registry_upsert: format!(
                "INSERT INTO {s}.registry (key, state) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, updated_at = now()"
            ),
            registry_delete: format!("DELETE FROM {s}.registry WHERE key = $1"),
            // Inserts of a pipelined transaction whose COMMIT is already on its way: a row
            // another writer inserted meanwhile fails it (and so the transaction) instead of
            // being skipped.
            insert_contacts_or_fail: format!(
                "INSERT INTO {s}.contacts (business, contact, state, version)
                 SELECT u.business, u.contact, u.state, {next}
                 FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(business, contact, state)
                 ORDER BY 1, 2"
            ),
            // Contact (0), sender (1) and registry records (2, with their key) in one statement.
            read_with_registries: format!(
                "SELECT 0, NULL::text, state FROM {s}.contacts WHERE business = $1 AND contact = $2
                 UNION ALL SELECT 1, NULL::text, state FROM {s}.senders WHERE business = $1
                 UNION ALL SELECT 2, key, state FROM {s}.registry WHERE key = ANY($3)"
            ),
            put_contact: format!(
                "INSERT INTO {s}.contacts (business, contact, state, version)
                 VALUES ($1, $2, $3, {next})
                 ON CONFLICT (business, contact) DO UPDATE
                 SET state = EXCLUDED.state, version = EXCLUDED.version, updated_at = now()"
            ),
            put_sender: format!(
                "INSERT INTO {s}.senders (business, state, version)
                 VALUES ($1, $2, {next})
                 ON CONFLICT (business) DO UPDATE
                 SET state = EXCLUDED.state, version = EXCLUDED.version, updated_at = now()"
            ),
        }
    }
}
