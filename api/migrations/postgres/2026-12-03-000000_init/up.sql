-- The inventory: a copy of what EC2 and SSM report, refreshed by the sync task. Search reads only this.
CREATE TABLE instances (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    environment TEXT,
    platform TEXT NOT NULL,
    state TEXT NOT NULL,
    private_ip TEXT,
    public_ip TEXT,
    private_dns TEXT,
    tags TEXT NOT NULL,
    agent_status TEXT,
    search_text TEXT NOT NULL,
    synced_at TIMESTAMP NOT NULL
);
CREATE INDEX instances_environment ON instances (environment, id);

CREATE TABLE requests (
    id TEXT PRIMARY KEY NOT NULL,
    requester TEXT NOT NULL,
    requester_name TEXT,
    environment TEXT NOT NULL,
    duration_minutes INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ticket TEXT,
    sudo BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    decided_by TEXT,
    decided_at TIMESTAMP,
    decision_comment TEXT,
    expires_at TIMESTAMP,
    activated_at TIMESTAMP,
    ended_at TIMESTAMP,
    ended_by TEXT
);
CREATE INDEX requests_requester ON requests (requester, created_at);
CREATE INDEX requests_environment_status ON requests (environment, status);

CREATE TABLE request_subjects (
    request_id TEXT NOT NULL REFERENCES requests (id),
    subject TEXT NOT NULL,
    os_user TEXT NOT NULL,
    public_key TEXT,
    private_key_sealed TEXT,
    key_collected_at TIMESTAMP,
    PRIMARY KEY (request_id, subject)
);
CREATE INDEX request_subjects_subject ON request_subjects (subject);

CREATE TABLE grants (
    request_id TEXT NOT NULL REFERENCES requests (id),
    subject TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    region TEXT NOT NULL,
    os_user TEXT NOT NULL,
    status TEXT NOT NULL,
    command_id TEXT,
    sent_at TIMESTAMP,
    last_error TEXT,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (request_id, subject, instance_id)
);

CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    request_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    instance_id TEXT,
    command_id TEXT,
    detail TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX events_request ON events (request_id, id);

-- One row per pending job; a job id is "<kind>:<request id>", so a job is never queued twice.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    request_id TEXT NOT NULL,
    run_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL,
    locked_until TIMESTAMP,
    locked_by TEXT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX jobs_run_at ON jobs (run_at);
