-- The orders schema. IF NOT EXISTS everywhere: the production database may already
-- hold these tables, and migrate must never drop or rewrite data.
CREATE TABLE IF NOT EXISTS clients (
    client_id  BIGINT       NOT NULL PRIMARY KEY,
    name       VARCHAR(200) NOT NULL,
    email      VARCHAR(320),
    country    CHAR(2),
    created_at TIMESTAMP    NOT NULL
);

CREATE TABLE IF NOT EXISTS orders (
    order_id     BIGINT        NOT NULL PRIMARY KEY,
    client_id    BIGINT        NOT NULL REFERENCES clients (client_id),
    order_date   DATE          NOT NULL,
    status       VARCHAR(16)   NOT NULL,
    currency     CHAR(3)       NOT NULL,
    total_amount DECIMAL(12,2) NOT NULL
);

CREATE INDEX IF NOT EXISTS ix_orders_client_date ON orders (client_id, order_date);

CREATE TABLE IF NOT EXISTS order_lines (
    order_id    BIGINT        NOT NULL REFERENCES orders (order_id),
    line_no     INT           NOT NULL,
    sku         VARCHAR(64)   NOT NULL,
    description VARCHAR(500),
    quantity    INT           NOT NULL,
    unit_price  DECIMAL(12,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
