package tracking

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/connectors/connectortest"
)

// The tracker's public inputs keep the push-connector contract. The pixel
// and the click always answer (the GIF, the redirect: a reader never sees
// the store), so only what reaches the intake shows an outage; the site
// report is a push of its own, answered 204.
func TestContract(t *testing.T) {
	var e *env
	var msgs map[int]*Prepared
	build := func(t *testing.T, in connectors.Intake) http.Handler {
		e = newEnvIntake(t, newClock(), in.(*fakeIntake), nil, func(c *Config) {
			c.Site = Site{Enabled: true, AllowedOrigins: []string{siteOrigin}, ReturnGap: defaultReturnGap, Identify: true}
		})
		msgs = map[int]*Prepared{}
		mux := http.NewServeMux()
		e.tr.PublicRoutes(mux)
		return mux
	}
	// message returns tracked message n, prepared an hour before its hits.
	message := func(n int) *Prepared {
		if p := msgs[n]; p != nil {
			return p
		}
		p := e.prepare(basicMessage)
		e.clk.Add(time.Hour)
		msgs[n] = p
		return p
	}
	hit := func(u string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, path(u), nil)
		r.Header.Set("User-Agent", humanUA)
		return r
	}
	t.Run("pixel", func(t *testing.T) {
		connectortest.RunPush(t, connectortest.Setup{
			New:             build,
			Input:           func(_ *testing.T, n int) *http.Request { return hit(message(n).PixelURL) },
			NoDuplicateFlag: true, AlwaysAnswers: true, NoBody: true,
		})
	})
	t.Run("click", func(t *testing.T) {
		connectortest.RunPush(t, connectortest.Setup{
			New:          build,
			Input:        func(_ *testing.T, n int) *http.Request { return hit(message(n).Links[0].ClickURL) },
			AcceptStatus: http.StatusFound, NoDuplicateFlag: true, AlwaysAnswers: true, NoBody: true,
			// A click opens the message too: email.clicked and email.opened.
			Events: 2,
		})
	})
	t.Run("site", func(t *testing.T) {
		connectortest.RunPush(t, connectortest.Setup{
			New: build,
			Input: func(t *testing.T, n int) *http.Request {
				visitor := "contract-visitor-" + strconv.Itoa(100000+n)
				r := httptest.NewRequest(http.MethodPost, "/t/v",
					strings.NewReader(`{"v":"`+visitor+`","u":"https://www.seller.test/","e":"v`+strconv.Itoa(n)+`@client.test"}`))
				r.Header.Set("Origin", siteOrigin)
				r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
				return r
			},
			AcceptStatus: http.StatusNoContent, NoDuplicateFlag: true,
			MaxBody: maxVisitBody,
		})
	})
}
