package testkit

import (
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample fetches url (a /metrics endpoint) and returns the value of the
// sample name{labels}, labels written "k=v,k2=v2" in the order the
// endpoint lists them ("" for none); -1 when there is no such sample.
func Sample(t testing.TB, url, name, labels string) float64 {
	t.Helper()
	fam, ok := Families(t, url)[name]
	if !ok {
		return -1
	}
	for _, m := range fam.Metric {
		var parts []string
		for _, lp := range m.Label {
			parts = append(parts, lp.GetName()+"="+lp.GetValue())
		}
		if strings.Join(parts, ",") != labels {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}

// Families fetches url (a /metrics endpoint) and returns its metric
// families by name; a family with no sample yet is not among them.
func Families(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// Get does a GET of url with token as its bearer ("" for none) and returns
// the status and the body.
func Get(t testing.TB, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
