ALTER TABLE refresh_tokens DROP COLUMN resources;
ALTER TABLE auth_codes DROP COLUMN resources;
