-- Refund and dispute rates per merchant and month (see metadata.yaml).
WITH payments AS (
    SELECT
        payment_id,
        merchant_id,
        status,
        CAST(DATE_TRUNC('MONTH', CAST(created_at AS DATE)) AS DATE) AS month_start
    FROM {{ curated('payments.payments') }}
),

charges AS (
    SELECT
        month_start,
        merchant_id,
        COUNT(*) AS payment_count
    FROM payments
    WHERE status = 'succeeded' AND merchant_id IS NOT NULL
    GROUP BY month_start, merchant_id
),

refunded AS (
    SELECT
        CAST(DATE_TRUNC('MONTH', CAST(r.created_at AS DATE)) AS DATE) AS month_start,
        p.merchant_id,
        COUNT(*) AS refund_count
    FROM {{ curated('refunds.refunds') }} AS r
    INNER JOIN payments AS p ON r.payment_id = p.payment_id
    WHERE r.status = 'succeeded' AND p.merchant_id IS NOT NULL
    GROUP BY CAST(DATE_TRUNC('MONTH', CAST(r.created_at AS DATE)) AS DATE), p.merchant_id
),

disputed AS (
    SELECT
        CAST(DATE_TRUNC('MONTH', CAST(d.opened_at AS DATE)) AS DATE) AS month_start,
        p.merchant_id,
        COUNT(*) AS dispute_count,
        COUNT_IF(d.status = 'lost') AS disputes_lost
    FROM {{ curated('disputes.disputes') }} AS d
    INNER JOIN payments AS p ON d.payment_id = p.payment_id
    WHERE d.opened_at IS NOT NULL AND p.merchant_id IS NOT NULL
    GROUP BY CAST(DATE_TRUNC('MONTH', CAST(d.opened_at AS DATE)) AS DATE), p.merchant_id
),

month_keys AS (
    SELECT
        month_start,
        merchant_id
    FROM charges
    UNION DISTINCT
    SELECT
        month_start,
        merchant_id
    FROM refunded
    UNION DISTINCT
    SELECT
        month_start,
        merchant_id
    FROM disputed
)

SELECT  -- noqa: ST06
    k.month_start,
    k.merchant_id,
    COALESCE(c.payment_count, 0) AS payment_count,
    COALESCE(r.refund_count, 0) AS refund_count,
    COALESCE(d.dispute_count, 0) AS dispute_count,
    COALESCE(d.disputes_lost, 0) AS disputes_lost,
    CAST(ROUND(COALESCE(r.refund_count, 0) / NULLIF(c.payment_count, 0), 6) AS NUMBER(18, 6)) AS refund_rate,
    CAST(ROUND(COALESCE(d.dispute_count, 0) / NULLIF(c.payment_count, 0), 6) AS NUMBER(18, 6)) AS dispute_rate
FROM month_keys AS k
LEFT JOIN charges AS c ON k.month_start = c.month_start AND k.merchant_id = c.merchant_id
LEFT JOIN refunded AS r ON k.month_start = r.month_start AND k.merchant_id = r.merchant_id
LEFT JOIN disputed AS d ON k.month_start = d.month_start AND k.merchant_id = d.merchant_id
