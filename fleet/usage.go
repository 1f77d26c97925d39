package fleet

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/caddy-canvas-scopes/caddy-canvas-scopes/usage"
)

// AddUsage adds a batch of counts (usage.Table.Drain) to the fleet-wide
// totals in one statement: each (key, scope) row gets the counts added,
// the earliest first_seen and the latest last_seen. Adding is commutative,
// so instances flushing at the same time never lose each other's counts.
func AddUsage(ctx context.Context, db DB, batch []usage.Delta) error {
	if len(batch) == 0 {
		return nil
	}
	keys := make([]string, len(batch))
	scopes := make([]string, len(batch))
	allowed := make([]int64, len(batch))
	denied := make([]int64, len(batch))
	first := make([]time.Time, len(batch))
	last := make([]time.Time, len(batch))
	for i, d := range batch {
		keys[i], scopes[i] = d.Key, d.Scope
		allowed[i], denied[i] = int64(d.Allowed), int64(d.Denied)
		first[i], last[i] = d.First, d.Last
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// Sorted by the primary key, so that two instances' batches take
		// the row locks in the same order and cannot deadlock.
		_, err := tx.Exec(ctx, `
			INSERT INTO canvas_scopes_usage AS u (developer_key, scope, allowed, denied, first_seen, last_seen)
			SELECT k, s, sum(a), sum(d), min(f), max(l)
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::timestamptz[]) AS b(k, s, a, d, f, l)
			GROUP BY k, s ORDER BY k, s
			ON CONFLICT (developer_key, scope) DO UPDATE SET
				allowed = u.allowed + EXCLUDED.allowed,
				denied = u.denied + EXCLUDED.denied,
				first_seen = least(u.first_seen, EXCLUDED.first_seen),
				last_seen = greatest(u.last_seen, EXCLUDED.last_seen)`,
			keys, scopes, allowed, denied, first, last)
		return err
	})
}

// KeyUsage is the fleet-wide counts of developer key id, sorted by scope.
func KeyUsage(ctx context.Context, db DB, id string) ([]usage.Entry, error) {
	var out []usage.Entry
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT scope, allowed, denied, first_seen, last_seen
			FROM canvas_scopes_usage WHERE developer_key = $1 ORDER BY scope COLLATE "C"`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e usage.Entry
			var a, d int64
			if err := rows.Scan(&e.Scope, &a, &d, &e.First, &e.Last); err != nil {
				return err
			}
			e.Allowed, e.Denied = uint64(a), uint64(d)
			e.First, e.Last = e.First.UTC(), e.Last.UTC()
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}
