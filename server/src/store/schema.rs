//! The one logical schema, as diesel sees it (both backends; see `migrations/`).

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        email -> Text,
        email_verified -> Bool,
        name -> Nullable<Text>,
        password_hash -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        secret_hash -> Nullable<Text>,
        registration_token_hash -> Nullable<Text>,
        metadata -> Text,
        registered_by -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        public_jwk -> Text,
        private_key_enc -> Text,
        created_at -> BigInt,
        retired_at -> Nullable<BigInt>,
        publish_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    auth_codes (code_hash) {
        code_hash -> Text,
        grant_id -> Text,
        client_id -> Text,
        user_id -> Text,
        redirect_uri -> Text,
        redirect_uri_given -> Bool,
        scope -> Text,
        nonce -> Nullable<Text>,
        code_challenge -> Nullable<Text>,
        auth_time -> BigInt,
        expires_at -> BigInt,
        used -> Bool,
        created_at -> BigInt,
        dpop_jkt -> Nullable<Text>,
        claims -> Nullable<Text>,
        resources -> Nullable<Text>,
    }
}

diesel::table! {
    access_tokens (jti) {
        jti -> Text,
        grant_id -> Nullable<Text>,
        client_id -> Text,
        user_id -> Nullable<Text>,
        scope -> Text,
        expires_at -> BigInt,
        revoked -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        grant_id -> Text,
        client_id -> Text,
        user_id -> Text,
        scope -> Text,
        auth_time -> BigInt,
        expires_at -> BigInt,
        used -> Bool,
        revoked -> Bool,
        created_at -> BigInt,
        dpop_jkt -> Nullable<Text>,
        claims -> Nullable<Text>,
        resources -> Nullable<Text>,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        user_id -> Text,
        auth_time -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    used_jtis (issuer, jti) {
        issuer -> Text,
        jti -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    initial_access_tokens (token_hash) {
        token_hash -> Text,
        expires_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    resources (id) {
        id -> Text,
        owner_id -> Text,
        rs_client_id -> Text,
        name -> Nullable<Text>,
        description -> Nullable<Text>,
        icon_uri -> Nullable<Text>,
        resource_type -> Nullable<Text>,
        scopes -> Text,
        extras -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    tickets (ticket_hash) {
        ticket_hash -> Text,
        owner_id -> Text,
        rs_client_id -> Text,
        resource_id -> Text,
        permissions -> Text,
        expires_at -> BigInt,
        used -> Bool,
        created_at -> BigInt,
        claims -> Nullable<Text>,
    }
}

diesel::table! {
    ticket_resources (ticket_hash, resource_id) {
        ticket_hash -> Text,
        resource_id -> Text,
    }
}

diesel::table! {
    policies (id) {
        id -> Text,
        owner_id -> Text,
        source -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    owner_settings (owner_id) {
        owner_id -> Text,
        accept_requests -> Bool,
        policy_version -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    access_requests (id) {
        id -> Text,
        owner_id -> Text,
        rs_client_id -> Text,
        client_id -> Text,
        party -> Text,
        party_key -> Text,
        permissions -> Text,
        status -> Text,
        granted -> Nullable<Text>,
        created_at -> BigInt,
        decided_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    grant_decisions (id) {
        id -> Text,
        owner_id -> Text,
        client_id -> Text,
        party -> Text,
        asked -> Text,
        granted -> Text,
        policies -> Text,
        outcome -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    rpt_grounds (jti, resource_id, scope) {
        jti -> Text,
        resource_id -> Text,
        scope -> Text,
        policy_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
        expires_at -> BigInt,
    }
}

diesel::table! {
    pcts (pct_hash) {
        pct_hash -> Text,
        client_id -> Text,
        claims -> Text,
        expires_at -> BigInt,
        revoked -> Bool,
        created_at -> BigInt,
    }
}

diesel::joinable!(ticket_resources -> tickets (ticket_hash));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    clients,
    signing_keys,
    auth_codes,
    access_tokens,
    refresh_tokens,
    sessions,
    consents,
    used_jtis,
    initial_access_tokens,
    resources,
    tickets,
    ticket_resources,
    policies,
    owner_settings,
    access_requests,
    grant_decisions,
    rpt_grounds,
    pcts,
);
