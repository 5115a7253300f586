package api

// Event is one line of POST /v1/run's stream (Accept:
// application/x-ndjson) and one message of /v1/connect: something that
// happened in the execution, as it happened.
type Event struct {
	// Event is what happened: EventStage, EventStdout, EventStderr,
	// EventResult, EventDone or EventError.
	Event EventKind `json:"event"`
	// Stage is the stage it happened in: "compile", "run" or "test".
	Stage string `json:"stage,omitempty"`
	// Test is the test's index (from 0) when Stage is "test".
	Test *int `json:"test,omitempty"`
	// Data is a piece of the program's output (stdout, stderr events):
	// whole UTF-8 characters, within the output limit.
	Data string `json:"data,omitempty"`
	// Result is the stage's result (result events).
	Result *StageResult `json:"result,omitempty"`
	// Response is the whole answer, the body the call without streaming
	// answers (the done event, the last).
	Response *RunResponse `json:"response,omitempty"`
	// Error is a platform failure after the stream began (the error
	// event, the last).
	Error *Error `json:"error,omitempty"`
}

// EventKind is the kind of an Event.
type EventKind string

const (
	// EventStage: a stage starts.
	EventStage EventKind = "stage"
	// EventStdout and EventStderr: the program wrote output.
	EventStdout EventKind = "stdout"
	EventStderr EventKind = "stderr"
	// EventResult: a stage ended; Result says how.
	EventResult EventKind = "result"
	// EventDone: the execution is over; Response is its answer.
	EventDone EventKind = "done"
	// EventError: the platform failed; nothing follows.
	EventError EventKind = "error"
)

// ContentTypeNDJSON is the media type of a streamed answer: one JSON
// Event per line.
const ContentTypeNDJSON = "application/x-ndjson"
