package outbox

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// ResealResult counts what SecretsReseal did.
type ResealResult struct {
	// Resealed signing secrets were moved to the current key.
	Resealed int64 `json:"resealed"`
	// HeadersResealed counts the subscriptions whose custom header values were
	// moved to the current key, or sealed for the first time (values written
	// before migration 7 were kept in plaintext).
	HeadersResealed int64 `json:"headers_resealed"`
	// KeyID is the current key they are now sealed with.
	KeyID string `json:"key_id"`
	// Remaining maps key ids to the secrets still sealed with them (only the
	// current key, after a complete run).
	Remaining map[string]int64 `json:"remaining"`
	// HeadersRemaining maps key ids to the subscriptions whose header values are
	// still sealed with them; "plaintext" counts those not sealed at all.
	HeadersRemaining map[string]int64 `json:"headers_remaining"`
}

// ResealBatchDefault is how many secrets SecretsReseal moves per transaction.
const ResealBatchDefault = 500

// SecretsReseal re-encrypts every signing secret and every subscription's
// custom header values sealed with an older key under the keyring's current key
// (sealing header values still in plaintext too), batch by batch, each batch in
// its own short transaction, so it runs online beside daemons that keep reading
// them. progress, if not nil, is called after each batch with the running total
// of both. A secret whose key is not in the keyring stops it with an error
// naming the key; the batches before it stay done.
func (s *Store) SecretsReseal(ctx context.Context, batch int, progress func(resealed int64)) (*ResealResult, error) {
	if s.keyring == nil {
		return nil, ErrNoEncryptionKey
	}
	if batch <= 0 {
		batch = ResealBatchDefault
	}
	current := s.keyring.CurrentKeyID()
	result := &ResealResult{KeyID: current}
	for {
		var n int
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			exec := s.on(tx)
			rows, err := s.queries.SecretsToReseal(ctx, exec, &dbsqlc.SecretsToResealParams{CurrentKeyID: current, Max: int32(min(batch, 10_000))}) //nolint:gosec // bounded
			if err != nil {
				return translateError("find secrets to reseal", err)
			}
			for _, row := range rows {
				aad := []byte(row.SubscriptionID)
				plaintext, err := s.keyring.Open(row.KeyID, row.Ciphertext, aad)
				if err != nil {
					return fmt.Errorf("secret %d of subscription %s: %w (add its key to OUTBOXD_ENCRYPTION_KEYS_OLD)", row.ID, row.SubscriptionID, err)
				}
				keyID, sealed, err := s.keyring.Seal(plaintext, aad)
				if err != nil {
					return err
				}
				if err := s.queries.SecretReseal(ctx, exec, &dbsqlc.SecretResealParams{ID: row.ID, KeyID: keyID, Ciphertext: sealed}); err != nil {
					return translateError("reseal secret", err)
				}
			}
			n = len(rows)
			return nil
		})
		if err != nil {
			return result, err
		}
		if n == 0 {
			break
		}
		result.Resealed += int64(n)
		if progress != nil {
			progress(result.Resealed)
		}
	}
	for {
		var n int
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			var err error
			n, err = s.headersResealBatch(ctx, s.on(tx), current, batch)
			return err
		})
		if err != nil {
			return result, err
		}
		if n == 0 {
			break
		}
		result.HeadersResealed += int64(n)
		if progress != nil {
			progress(result.Resealed + result.HeadersResealed)
		}
	}
	counts, err := s.queries.SecretsCountByKey(ctx, s.on(s.db))
	if err != nil {
		return result, translateError("count secrets", err)
	}
	result.Remaining = make(map[string]int64, len(counts))
	for _, c := range counts {
		result.Remaining[c.KeyID] = c.Secrets
	}
	headerCounts, err := s.queries.HeadersCountByKey(ctx, s.on(s.db))
	if err != nil {
		return result, translateError("count headers", err)
	}
	result.HeadersRemaining = make(map[string]int64, len(headerCounts))
	for _, c := range headerCounts {
		key := c.KeyID
		if key == "" {
			key = "plaintext"
		}
		result.HeadersRemaining[key] = c.Subscriptions
	}
	return result, nil
}
