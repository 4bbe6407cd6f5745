-- Users for the embedded (SQLite) store; same columns as PostgreSQL.
CREATE TABLE IF NOT EXISTS users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    email       TEXT NOT NULL UNIQUE,
    first_name  TEXT,
    last_name   TEXT,
    password    TEXT NOT NULL,
    user_active INTEGER NOT NULL DEFAULT 1,
    is_admin    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

-- The seeded user: admin@example.com / verysecret (bcrypt cost 12, as made by Go).
INSERT OR IGNORE INTO users (email, first_name, last_name, password, user_active, is_admin)
VALUES ('admin@example.com', 'Admin', 'User',
        '$2a$12$/Swbp/sBqq6JuExkCGSCeOkvuzc2pdhfkI5cOQNrjbZRZCtCiLQna', 1, 1);
