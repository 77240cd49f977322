-- BCP-09 (RFC 9700 §2.1.1): a code is refused when its client already used the same PKCE
-- `code_challenge` for a code still on record; this index answers that lookup. Keep in step with
-- the other backend's folder: one logical schema.
CREATE INDEX auth_codes_client_challenge ON auth_codes(client_id, code_challenge);
