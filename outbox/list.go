package outbox

// ListLimitMax is the most items one page of a listing holds. The API's ?limit=
// and the CLI's --limit accept 1 to ListLimitMax; ValidateListLimit checks it.
// (The store's list methods fetch up to 1,000 rows, so that a pager can ask for
// one more than it shows to learn whether another page follows.)
const ListLimitMax = 500

// ValidateListLimit checks a page size given by a person: 1 to ListLimitMax.
func ValidateListLimit(limit int) error {
	if limit < 1 || limit > ListLimitMax {
		return invalid("limit", "%d is out of range: 1 to %d", limit, ListLimitMax)
	}
	return nil
}
