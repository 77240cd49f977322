-- DPoP (RFC 9449). Keep in step with the other backend's folder: one logical schema.
-- §5: a public client's refresh token is bound to the key of the DPoP proof it was issued with
-- (the RFC 7638 thumbprint); refreshing needs a proof with the same key.
ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt TEXT;
-- §10: an authorization request may bind its code to a key (`dpop_jkt`); the code is then
-- redeemed only with a proof from that key.
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT;
