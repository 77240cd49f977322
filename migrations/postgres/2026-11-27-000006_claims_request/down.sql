ALTER TABLE refresh_tokens DROP COLUMN claims;
ALTER TABLE auth_codes DROP COLUMN claims;
