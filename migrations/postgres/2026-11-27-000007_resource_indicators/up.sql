-- RFC 8707 resource indicators (HEART-OAUTH-27, IGOV-OAUTH-31): the targets an authorization
-- request named (a JSON array of absolute URIs), carried from the code to its tokens and from
-- refresh token to refresh token; access tokens are audience-restricted to them. Keep in step
-- with the other backend's folder: one logical schema.
ALTER TABLE auth_codes ADD COLUMN resources TEXT;
ALTER TABLE refresh_tokens ADD COLUMN resources TEXT;
