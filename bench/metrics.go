package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The server metrics a report reads from /metrics.
const (
	metricRSS         = "process_resident_memory_bytes"
	metricOpenFDs     = "process_open_fds"
	metricGoroutines  = "go_goroutines"
	metricConnections = "wsedge_connections"
)

// Where a server sample comes from.
const (
	// SourceMetrics is a scrape of /metrics on every -admin URL. A scrape
	// allocates in the server, so it is taken outside the hold only.
	SourceMetrics = "metrics"
	// SourceProc is /proc/PID of a local server (-pid), which the server
	// does not notice: RSS, CPU and open descriptors, no connection count.
	SourceProc = "proc"
)

// ServerSample is one reading of the servers' /metrics, summed over every
// -admin URL, or of /proc/PID. A metric the source lacks is listed in
// Missing.
type ServerSample struct {
	At          time.Time `json:"at"`
	Source      string    `json:"source"`
	Connections float64   `json:"connections"`
	RSS         float64   `json:"rss_bytes"`
	OpenFDs     float64   `json:"open_fds"`
	Goroutines  float64   `json:"goroutines"`
	// CPUSeconds is the server's user+system CPU since it started (proc).
	CPUSeconds float64  `json:"cpu_seconds,omitempty"`
	Missing    []string `json:"missing,omitempty"`
}

// admin talks to the servers' admin listeners.
type admin struct {
	urls   []string
	token  string
	client *http.Client
}

func newAdmin(cfg *Config) *admin {
	// No gzip: a server that honours it allocates a compressor per scrape,
	// and the samples would then measure the sampling.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DisableCompression = true
	return &admin{
		urls:   cfg.Admin,
		token:  cfg.AdminToken,
		client: &http.Client{Timeout: 10 * time.Second, Transport: t},
	}
}

func (a *admin) request(ctx context.Context, method, url string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	return req, nil
}

// sample scrapes every admin URL and sums the values.
func (a *admin) sample(ctx context.Context) (*ServerSample, error) {
	s := &ServerSample{At: time.Now(), Source: SourceMetrics}
	missing := map[string]bool{}
	for _, base := range a.urls {
		fams, err := a.scrape(ctx, base)
		if err != nil {
			return nil, err
		}
		for name, dst := range map[string]*float64{
			metricRSS: &s.RSS, metricOpenFDs: &s.OpenFDs,
			metricGoroutines: &s.Goroutines, metricConnections: &s.Connections,
		} {
			v, ok := gaugeValue(fams[name])
			if !ok {
				missing[name] = true
			}
			*dst += v
		}
	}
	for name := range missing {
		s.Missing = append(s.Missing, name)
	}
	return s, nil
}

func (a *admin) scrape(ctx context.Context, base string) (map[string]*dto.MetricFamily, error) {
	url := strings.TrimSuffix(base, "/") + "/metrics"
	req, err := a.request(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: parse: %w", url, err)
	}
	return fams, nil
}

// gaugeValue sums the samples of a gauge, counter or untyped family.
func gaugeValue(f *dto.MetricFamily) (float64, bool) {
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, false
	}
	var sum float64
	for _, m := range f.GetMetric() {
		switch {
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, true
}

// errAdmin marks a failed admin API call.
var errAdmin = errors.New("admin API")

// post sends one JSON body to path on the first admin URL and returns the
// time just before sending.
func (a *admin) post(ctx context.Context, path string, body []byte) error {
	url := strings.TrimSuffix(a.urls[0], "/") + path
	req, err := a.request(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return fmt.Errorf("%w: POST %s: %v", errAdmin, url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: POST %s: %v", errAdmin, url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%w: POST %s: HTTP %s", errAdmin, url, resp.Status)
	}
	return nil
}
