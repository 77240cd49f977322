DROP INDEX auth_codes_client_nonce;
DROP INDEX auth_codes_client_challenge;
