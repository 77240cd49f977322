ALTER TABLE auth_codes DROP COLUMN dpop_jkt;
ALTER TABLE refresh_tokens DROP COLUMN dpop_jkt;
