// Package defaults fills a configuration's unset fields from its defaults,
// the same way in every package that has a Config (edge, edge/app).
package defaults

// Zero sets *v to d when *v is the zero value.
func Zero[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Positive sets *v to d unless *v is positive.
func Positive[T ~int | ~int64](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
