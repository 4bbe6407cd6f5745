-- Users, compatible with the Go platform's table (which may already exist).
CREATE TABLE IF NOT EXISTS users (
    id          serial PRIMARY KEY,
    email       varchar(255) NOT NULL,
    first_name  varchar(255),
    last_name   varchar(255),
    password    varchar(60) NOT NULL,
    user_active integer NOT NULL DEFAULT 1,
    created_at  timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    updated_at  timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);
-- Troupe: one account per address; admin role for user management.
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email);
ALTER TABLE users ADD COLUMN IF NOT EXISTS is_admin integer NOT NULL DEFAULT 0;

-- The seeded user: admin@example.com / verysecret (bcrypt cost 12, as made by Go).
INSERT INTO users (email, first_name, last_name, password, user_active, is_admin)
VALUES ('admin@example.com', 'Admin', 'User',
        '$2a$12$/Swbp/sBqq6JuExkCGSCeOkvuzc2pdhfkI5cOQNrjbZRZCtCiLQna', 1, 1)
ON CONFLICT (email) DO UPDATE SET is_admin = 1;
