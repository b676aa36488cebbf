-- Ledger balance check: debits and credits per account and day (see metadata.yaml).
WITH per_account AS (
    SELECT
        CAST(e.created_at AS DATE) AS entry_date,
        e.account_id,
        a.merchant_id,
        a.currency,
        a.account_type,
        -- sums typed as the amounts: exact decimals on every engine (DuckDB would widen them to a double)
        CAST(SUM(IFF(e.direction = 'debit', e.amount, 0)) AS NUMBER(18, 2)) AS debit_total,
        CAST(SUM(IFF(e.direction = 'credit', e.amount, 0)) AS NUMBER(18, 2)) AS credit_total,
        COUNT(*) AS entry_count
    FROM {{ curated('ledger.ledger_entries') }} AS e
    LEFT JOIN {{ curated('ledger.accounts') }} AS a ON e.account_id = a.account_id
    WHERE e.account_id IS NOT NULL
    GROUP BY CAST(e.created_at AS DATE), e.account_id, a.merchant_id, a.currency, a.account_type
),

per_owner AS (
    SELECT
        entry_date,
        merchant_id,
        CAST(SUM(debit_total) AS NUMBER(18, 2)) AS owner_debits,
        CAST(SUM(credit_total) AS NUMBER(18, 2)) AS owner_credits
    FROM per_account
    GROUP BY entry_date, merchant_id
)

SELECT
    a.entry_date,
    a.account_id,
    a.merchant_id,
    a.currency,
    a.account_type,
    a.entry_count,
    a.debit_total,
    a.credit_total,
    o.owner_debits,
    o.owner_credits,
    a.debit_total - a.credit_total AS account_net,
    o.owner_debits = o.owner_credits AS balanced
FROM per_account AS a
INNER JOIN per_owner AS o
    ON
        a.entry_date = o.entry_date
        AND EQUAL_NULL(a.merchant_id, o.merchant_id)
