-- DPoP (RFC 9449 §5): a public client's refresh token is bound to the key of the DPoP proof it
-- was issued with (the RFC 7638 thumbprint); refreshing needs a proof with the same key.
-- Keep in step with the other backend's folder: one logical schema.
ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt TEXT;
