package tracking

// The black-box tests (package tracking_test) name these.
var (
	OpenEventID  = openEventID
	ClickEventID = clickEventID
)

// msgReport is a tracked message's report (GET /api/v1/messages/{id}).
type Report = msgReport
