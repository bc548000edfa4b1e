-- The orders schema for Azure SQL (T-SQL). Each object is created only when it
-- is missing: the production database already holds these tables, and migrate
-- must never drop or rewrite data.
-- DATETIME2, not TIMESTAMP: in T-SQL TIMESTAMP means ROWVERSION.
-- NVARCHAR for free text: VARCHAR under a non-UTF-8 collation loses characters
-- outside the code page (client names are international).
IF OBJECT_ID(N'dbo.clients', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.clients (
        client_id  BIGINT        NOT NULL CONSTRAINT pk_clients PRIMARY KEY,
        name       NVARCHAR(200) NOT NULL,
        email      NVARCHAR(320) NULL,
        country    CHAR(2)       NULL,
        created_at DATETIME2     NOT NULL
    );
END;

IF OBJECT_ID(N'dbo.orders', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.orders (
        order_id     BIGINT        NOT NULL CONSTRAINT pk_orders PRIMARY KEY,
        client_id    BIGINT        NOT NULL CONSTRAINT fk_orders_clients REFERENCES dbo.clients (client_id),
        order_date   DATE          NOT NULL,
        status       VARCHAR(16)   NOT NULL,
        currency     CHAR(3)       NOT NULL,
        total_amount DECIMAL(12,2) NOT NULL
    );
END;

IF NOT EXISTS (SELECT 1 FROM sys.indexes
               WHERE name = N'ix_orders_client_date' AND object_id = OBJECT_ID(N'dbo.orders'))
BEGIN
    CREATE INDEX ix_orders_client_date ON dbo.orders (client_id, order_date);
END;

IF OBJECT_ID(N'dbo.order_lines', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.order_lines (
        order_id    BIGINT        NOT NULL CONSTRAINT fk_order_lines_orders REFERENCES dbo.orders (order_id),
        line_no     INT           NOT NULL,
        sku         VARCHAR(64)   NOT NULL,
        description NVARCHAR(500) NULL,
        quantity    INT           NOT NULL,
        unit_price  DECIMAL(12,2) NOT NULL,
        CONSTRAINT pk_order_lines PRIMARY KEY (order_id, line_no)
    );
END;
