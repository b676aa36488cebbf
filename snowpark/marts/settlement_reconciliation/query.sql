-- Settlement batches vs payouts (vs the acquirer report) per merchant, currency and day (see metadata.yaml).
WITH internal AS (
    SELECT
        merchant_id,
        currency,
        CAST(settled_at AS DATE) AS settlement_date,
        CAST(SUM(gross_amount) AS NUMBER(18, 2)) AS internal_gross,
        CAST(SUM(fee_amount) AS NUMBER(18, 2)) AS internal_fees,
        CAST(SUM(net_amount) AS NUMBER(18, 2)) AS internal_net,
        COUNT(*) AS internal_batches
    FROM {{ curated('settlements.settlement_batches') }}
    WHERE settled_at IS NOT NULL AND merchant_id IS NOT NULL
    GROUP BY merchant_id, currency, CAST(settled_at AS DATE)
),

paid AS (
    SELECT
        merchant_id,
        currency,
        arrival_date AS settlement_date,
        CAST(SUM(amount) AS NUMBER(18, 2)) AS payout_amount,
        COUNT(*) AS payout_count
    FROM {{ curated('payouts.payouts') }}
    WHERE status IN ('paid', 'in_transit') AND arrival_date IS NOT NULL AND merchant_id IS NOT NULL
    GROUP BY merchant_id, currency, arrival_date
),

{%- if present.adyen__settlement_details %}

acquirer AS (
    -- Merchant Reference is M<merchant_id>-...; payout and fee lines carry no merchant and are left out
    SELECT
        net_currency AS currency,
        CAST(creation_date AS DATE) AS settlement_date,
        CAST(SUM(COALESCE(net_credit, 0) - COALESCE(net_debit, 0)) AS NUMBER(18, 2)) AS acquirer_net,
        TRY_CAST(SPLIT_PART(SPLIT_PART(merchant_reference, '-', 1), 'M', 2) AS NUMBER(38, 0)) AS merchant_id,
        COUNT(*) AS acquirer_lines
    FROM {{ curated('adyen.settlement_details') }}
    WHERE record_type IN ('Settled', 'Refunded', 'Chargeback') AND merchant_reference LIKE 'M%-%'
    GROUP BY
        TRY_CAST(SPLIT_PART(SPLIT_PART(merchant_reference, '-', 1), 'M', 2) AS NUMBER(38, 0)),
        net_currency,
        CAST(creation_date AS DATE)
),
{%- endif %}

day_keys AS (
    SELECT
        merchant_id,
        currency,
        settlement_date
    FROM internal
    UNION DISTINCT
    SELECT
        merchant_id,
        currency,
        settlement_date
    FROM paid
    {%- if present.adyen__settlement_details %}
    UNION DISTINCT
    SELECT
        merchant_id,
        currency,
        settlement_date
    FROM acquirer
    WHERE merchant_id IS NOT NULL
    {%- endif %}
),

joined AS (
    SELECT  -- noqa: ST06
        k.settlement_date,
        k.merchant_id,
        k.currency,
        COALESCE(i.internal_batches, 0) AS internal_batches,
        COALESCE(i.internal_gross, 0) AS internal_gross,
        COALESCE(i.internal_fees, 0) AS internal_fees,
        COALESCE(i.internal_net, 0) AS internal_net,
        COALESCE(p.payout_count, 0) AS payout_count,
        COALESCE(p.payout_amount, 0) AS payout_amount,
        {%- if present.adyen__settlement_details %}
        COALESCE(a.acquirer_lines, 0) AS acquirer_lines,
        COALESCE(a.acquirer_net, 0) AS acquirer_net,
        {%- else %}
        CAST(NULL AS NUMBER(38, 0)) AS acquirer_lines,
        CAST(NULL AS NUMBER(18, 2)) AS acquirer_net,
        {%- endif %}
        COALESCE(i.internal_net, 0) - COALESCE(p.payout_amount, 0) AS payout_difference
    FROM day_keys AS k
    LEFT JOIN internal AS i
        ON k.merchant_id = i.merchant_id AND k.currency = i.currency AND k.settlement_date = i.settlement_date
    LEFT JOIN paid AS p
        ON k.merchant_id = p.merchant_id AND k.currency = p.currency AND k.settlement_date = p.settlement_date
    {%- if present.adyen__settlement_details %}
    LEFT JOIN acquirer AS a
        ON k.merchant_id = a.merchant_id AND k.currency = a.currency AND k.settlement_date = a.settlement_date
    {%- endif %}
),

windowed AS (
    SELECT
        j.settlement_date,
        j.merchant_id,
        j.currency,
        CAST(SUM(w.payout_difference) AS NUMBER(18, 2)) AS window_difference
    FROM joined AS j
    INNER JOIN joined AS w
        ON
            j.merchant_id = w.merchant_id
            AND j.currency = w.currency
            AND w.settlement_date BETWEEN DATEADD(DAY, -{{ meta.neighbour_days }}, j.settlement_date)
            AND DATEADD(DAY, {{ meta.neighbour_days }}, j.settlement_date)
    GROUP BY j.settlement_date, j.merchant_id, j.currency
)

SELECT
    j.settlement_date,
    j.merchant_id,
    j.currency,
    j.internal_batches,
    j.internal_gross,
    j.internal_fees,
    j.internal_net,
    j.payout_count,
    j.payout_amount,
    j.acquirer_lines,
    j.acquirer_net,
    j.payout_difference,
    w.window_difference,
    j.internal_net - j.acquirer_net AS acquirer_difference,
    CASE
        WHEN j.payout_difference = 0 AND COALESCE(j.internal_net - j.acquirer_net, 0) = 0 THEN 'matched'
        WHEN w.window_difference = 0 AND COALESCE(j.internal_net - j.acquirer_net, 0) = 0 THEN 'timing'
        ELSE 'mismatch'
    END AS status
FROM joined AS j
INNER JOIN windowed AS w
    ON j.settlement_date = w.settlement_date AND j.merchant_id = w.merchant_id AND j.currency = w.currency
