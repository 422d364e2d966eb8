package outbox

// Exported for the outbox_test package only.
var (
	TranslateError  = translateError
	ConstraintRules = func() map[string][2]string {
		rules := make(map[string][2]string, len(constraints))
		for name, c := range constraints {
			rules[name] = [2]string{c.field, c.rule}
		}
		return rules
	}
)
