-- Daily revenue per merchant, currency and card brand, normalised to USD (see metadata.yaml).
WITH payments AS (
    SELECT
        payment_id,
        merchant_id,
        currency,
        status,
        amount,
        CAST(created_at AS DATE) AS business_date,
        COALESCE(card_brand, 'unknown') AS card_brand
    FROM {{ curated('payments.payments') }}
),

events AS (
    SELECT
        business_date,
        merchant_id,
        currency,
        card_brand,
        1 AS payment_count,
        0 AS refund_count,
        amount AS gross_amount,
        0 AS refunded_amount,
        0 AS fee_amount
    FROM payments
    WHERE status = 'succeeded'
    UNION ALL
    SELECT
        CAST(r.created_at AS DATE) AS business_date,
        p.merchant_id,
        p.currency,
        p.card_brand,
        0 AS payment_count,
        1 AS refund_count,
        0 AS gross_amount,
        r.amount AS refunded_amount,
        0 AS fee_amount
    FROM {{ curated('refunds.refunds') }} AS r
    INNER JOIN payments AS p ON r.payment_id = p.payment_id
    WHERE r.status = 'succeeded'
    UNION ALL
    SELECT
        CAST(e.created_at AS DATE) AS business_date,
        p.merchant_id,
        p.currency,
        p.card_brand,
        0 AS payment_count,
        0 AS refund_count,
        0 AS gross_amount,
        0 AS refunded_amount,
        e.amount AS fee_amount
    FROM {{ curated('ledger.ledger_entries') }} AS e
    INNER JOIN payments AS p ON e.payment_id = p.payment_id
    WHERE e.entry_type = 'fee' AND e.direction = 'debit'
),

fx_candidates AS (
    SELECT
        rate_date,
        quote_currency AS currency,
        rate AS fx_rate,
        'fx.fx_rates' AS fx_source,
        2 AS preference
    FROM {{ curated('fx.fx_rates') }}
    WHERE base_currency = 'USD' AND rate > 0
    {%- if present.fxrates__daily_rates %}
    UNION ALL
    SELECT
        CAST(api.rate_date AS DATE) AS rate_date,
        api.quote AS currency,
        api.rate AS fx_rate,
        'fxrates.daily_rates' AS fx_source,
        1 AS preference
    FROM {{ curated('fxrates.daily_rates') }} AS api
    WHERE api.base = 'USD' AND api.rate > 0
    {%- endif %}
),

days AS (
    SELECT DISTINCT
        business_date,
        currency
    FROM events
),

fx AS (
    SELECT
        d.business_date,
        d.currency,
        IFF(d.currency = 'USD', 1, f.fx_rate) AS fx_rate,
        IFF(d.currency = 'USD', d.business_date, f.rate_date) AS fx_rate_date,
        IFF(d.currency = 'USD', 'identity', f.fx_source) AS fx_source
    FROM days AS d
    LEFT JOIN fx_candidates AS f
        ON d.currency = f.currency AND d.business_date >= f.rate_date
    QUALIFY ROW_NUMBER() OVER (
        PARTITION BY d.business_date, d.currency ORDER BY f.rate_date DESC, f.preference ASC
    ) = 1
),

totals AS (
    SELECT
        business_date,
        merchant_id,
        currency,
        card_brand,
        -- sums typed as the amounts: exact decimals on every engine (DuckDB would widen them to a double)
        CAST(SUM(gross_amount) AS NUMBER(18, 2)) AS gross_amount,
        CAST(SUM(refunded_amount) AS NUMBER(18, 2)) AS refunded_amount,
        CAST(SUM(fee_amount) AS NUMBER(18, 2)) AS fee_amount,
        SUM(payment_count) AS payment_count,
        SUM(refund_count) AS refund_count
    FROM events
    GROUP BY business_date, merchant_id, currency, card_brand
)

SELECT
    t.business_date,
    t.merchant_id,
    t.currency,
    t.card_brand,
    t.payment_count,
    t.refund_count,
    t.gross_amount,
    t.refunded_amount,
    t.fee_amount,
    fx.fx_rate,
    fx.fx_rate_date,
    fx.fx_source,
    t.gross_amount - t.refunded_amount - t.fee_amount AS net_amount,
    ROUND(t.gross_amount / fx.fx_rate, 2) AS gross_usd,
    ROUND(t.refunded_amount / fx.fx_rate, 2) AS refunded_usd,
    ROUND(t.fee_amount / fx.fx_rate, 2) AS fee_usd,
    ROUND((t.gross_amount - t.refunded_amount - t.fee_amount) / fx.fx_rate, 2) AS net_usd
FROM totals AS t
LEFT JOIN fx ON t.business_date = fx.business_date AND t.currency = fx.currency
