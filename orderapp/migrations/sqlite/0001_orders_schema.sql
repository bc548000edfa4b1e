-- The orders schema for the embedded demo database. SQLite has no fixed-point
-- type: DECIMAL(12,2) gets NUMERIC affinity and the application rounds amounts
-- to cents when it reads them. Dates are stored as 'YYYY-MM-DD' text, which
-- sorts and compares like a date.
CREATE TABLE IF NOT EXISTS clients (
    client_id  INTEGER      NOT NULL PRIMARY KEY,
    name       VARCHAR(200) NOT NULL,
    email      VARCHAR(320),
    country    CHAR(2),
    created_at TIMESTAMP    NOT NULL
);

CREATE TABLE IF NOT EXISTS orders (
    order_id     INTEGER       NOT NULL PRIMARY KEY,
    client_id    INTEGER       NOT NULL REFERENCES clients (client_id),
    order_date   DATE          NOT NULL,
    status       VARCHAR(16)   NOT NULL,
    currency     CHAR(3)       NOT NULL,
    total_amount DECIMAL(12,2) NOT NULL
);

CREATE INDEX IF NOT EXISTS ix_orders_client_date ON orders (client_id, order_date);

CREATE TABLE IF NOT EXISTS order_lines (
    order_id    INTEGER       NOT NULL REFERENCES orders (order_id),
    line_no     INTEGER       NOT NULL,
    sku         VARCHAR(64)   NOT NULL,
    description VARCHAR(500),
    quantity    INTEGER       NOT NULL,
    unit_price  DECIMAL(12,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
) WITHOUT ROWID;
