-- OpenID Connect Core §5.5 (IGOV-OIDC-17): the individual UserInfo claims an authorization
-- request asked for with the `claims` parameter (a JSON array of claim names), carried from the
-- code to its tokens and from refresh token to refresh token. Keep in step with the other
-- backend's folder: one logical schema.
ALTER TABLE auth_codes ADD COLUMN claims TEXT;
ALTER TABLE refresh_tokens ADD COLUMN claims TEXT;
