//! One schema for both backends (see `migrations/sqlite` and `migrations/postgres`).

diesel::table! {
    instances (id) {
        id -> Text,
        account_id -> Text,
        region -> Text,
        name -> Text,
        environment -> Nullable<Text>,
        platform -> Text,
        state -> Text,
        private_ip -> Nullable<Text>,
        public_ip -> Nullable<Text>,
        private_dns -> Nullable<Text>,
        tags -> Text,
        agent_status -> Nullable<Text>,
        search_text -> Text,
        synced_at -> Timestamp,
    }
}

diesel::table! {
    requests (id) {
        id -> Text,
        requester -> Text,
        requester_name -> Nullable<Text>,
        environment -> Text,
        duration_minutes -> Integer,
        reason -> Text,
        ticket -> Nullable<Text>,
        sudo -> Bool,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        decision_comment -> Nullable<Text>,
        expires_at -> Nullable<Timestamp>,
        activated_at -> Nullable<Timestamp>,
        ended_at -> Nullable<Timestamp>,
        ended_by -> Nullable<Text>,
    }
}

diesel::table! {
    request_subjects (request_id, subject) {
        request_id -> Text,
        subject -> Text,
        os_user -> Text,
        public_key -> Nullable<Text>,
        private_key_sealed -> Nullable<Text>,
        key_collected_at -> Nullable<Timestamp>,
        windows_user -> Nullable<Text>,
        password_key_public -> Nullable<Text>,
        password_key_sealed -> Nullable<Text>,
    }
}

diesel::table! {
    grants (request_id, subject, instance_id) {
        request_id -> Text,
        subject -> Text,
        instance_id -> Text,
        region -> Text,
        os_user -> Text,
        status -> Text,
        command_id -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        updated_at -> Timestamp,
        platform -> Text,
        secret_sealed -> Nullable<Text>,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        request_id -> Nullable<Text>,
        actor -> Text,
        action -> Text,
        instance_id -> Nullable<Text>,
        command_id -> Nullable<Text>,
        detail -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        kind -> Text,
        request_id -> Text,
        run_at -> Timestamp,
        attempts -> Integer,
        locked_until -> Nullable<Timestamp>,
        locked_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    os_accounts (name) {
        name -> Text,
        subject -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(request_subjects -> requests (request_id));
diesel::joinable!(grants -> requests (request_id));

diesel::allow_tables_to_appear_in_same_query!(
    instances,
    requests,
    request_subjects,
    grants,
    events,
    jobs,
    os_accounts
);
