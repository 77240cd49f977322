-- BCP-09 (RFC 9700 §2.1.1): a client may not use one PKCE `code_challenge` for two codes on
-- record. Unique, so two submissions racing cannot both get a code (NULLs, codes without PKCE,
-- are distinct on both backends); any duplicates on record are dropped first (codes live a
-- minute). Keep in step with the other backend's folder: one logical schema.
DELETE FROM auth_codes
WHERE code_challenge IS NOT NULL
  AND code_hash NOT IN (
    SELECT MIN(code_hash) FROM auth_codes
    WHERE code_challenge IS NOT NULL
    GROUP BY client_id, code_challenge
  );
CREATE UNIQUE INDEX auth_codes_client_challenge ON auth_codes(client_id, code_challenge);
-- BCP-09's other half: a client's OpenID Connect `nonce` seen again is logged (not refused).
CREATE INDEX auth_codes_client_nonce ON auth_codes(client_id, nonce);
