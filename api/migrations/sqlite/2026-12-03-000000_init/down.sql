DROP TABLE jobs;
DROP TABLE events;
DROP TABLE grants;
DROP TABLE request_subjects;
DROP TABLE requests;
DROP TABLE instances;
