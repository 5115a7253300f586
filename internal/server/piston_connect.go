package server

import (
	"encoding/json"
	"fmt"
	"syscall"

	"github.com/runtimed/runtimed/pkg/api"
)

// pistonProtocol is /api/v2/connect: Piston's interactive protocol, its
// messages, their order and its close codes (Piston's api/src/api/v2.js).
// Where Piston lets a connection's job run on after the connection
// closed, runtimed stops it; and signals reach the run stage only.
type pistonProtocol struct{}

// Piston's close reasons.
const (
	pistonAlreadyInitialized = "Already Initialized"
	pistonInitTimeout        = "Initialization Timeout"
	pistonNotifiedError      = "Notified Error"
	pistonNotInitialized     = "Not yet initialized"
	pistonOnlyStdin          = "Can only write to stdin"
	pistonInvalidSignal      = "Invalid signal"
	pistonJobCompleted       = "Job Completed"
)

func (p *pistonProtocol) initTimeout(c *connection) {
	c.closeIfIdle(api.CloseInitTimeout, pistonInitTimeout)
}

// fail notifies the client of an error and closes the connection.
func (p *pistonProtocol) fail(c *connection, message string) {
	c.send(api.PistonErrorMessage{Type: "error", Message: message})
	c.close(api.CloseError, pistonNotifiedError)
}

func (p *pistonProtocol) handle(c *connection, msg []byte) {
	var m struct {
		Type   string          `json:"type"`
		Stream json.RawMessage `json:"stream"`
		Data   json.RawMessage `json:"data"`
		Signal json.RawMessage `json:"signal"`
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		p.fail(c, "invalid JSON: "+err.Error())
		return
	}
	switch m.Type {
	case "init":
		p.init(c, msg)
	case "data":
		var stream, data string
		switch {
		case !c.isStarted():
			c.close(api.CloseNotInitialized, pistonNotInitialized)
		case json.Unmarshal(m.Stream, &stream) != nil || stream != "stdin":
			c.close(api.CloseOnlyStdin, pistonOnlyStdin)
		case json.Unmarshal(m.Data, &data) != nil:
			p.fail(c, "data is required as a string")
		case !c.addStdin(data):
			p.fail(c, fmt.Sprintf("the stdin sent is more than the maximum of %d bytes", stateFrom(c.r.Context()).cfg.Requests.MaxStdinBytes))
		}
	case "signal":
		var name string
		_ = json.Unmarshal(m.Signal, &name)
		n, ok := api.ValidSignal(name)
		switch {
		case !c.isStarted():
			c.close(api.CloseNotInitialized, pistonNotInitialized)
		case !ok:
			c.close(api.CloseInvalidSignal, pistonInvalidSignal)
		default:
			c.signal(syscall.Signal(n))
		}
	}
	// Other types are ignored, as Piston does.
}

// init starts the execution an init message asks for, checked as POST
// /api/v2/execute checks its body.
func (p *pistonProtocol) init(c *connection, msg []byte) {
	if c.isStarted() {
		c.close(api.CloseAlreadyInitialized, pistonAlreadyInitialized)
		return
	}
	var req api.PistonExecuteRequest
	if err := json.Unmarshal(msg, &req); err != nil {
		aerr := decodeError(err, stateFrom(c.r.Context()).cfg.Requests.MaxBodyBytes)
		c.refuse(aerr)
		p.fail(c, aerr.Message)
		return
	}
	plan, aerr := stateFrom(c.r.Context()).pistonPlan(&req)
	if aerr != nil {
		c.refuse(aerr)
		p.fail(c, aerr.Message)
		return
	}
	if ok, already := c.begin(); already {
		c.close(api.CloseAlreadyInitialized, pistonAlreadyInitialized)
		return
	} else if !ok {
		return
	}
	// Piston discards an init's stdin: the data messages are the stdin.
	plan.Stdin = ""
	lang := plan.Language
	c.send(api.PistonRuntimeMessage{Type: "runtime", Language: lang.Name, Version: lang.Version})
	c.start(plan, &pistonEvents{c: c}, func(resp *api.RunResponse, aerr *api.Error) {
		switch {
		case aerr != nil:
			p.fail(c, aerr.Message)
		case resp != nil:
			c.finish(api.CloseJobCompleted, pistonJobCompleted)
		}
	})
}

// pistonEvents sends an execution's events as Piston's messages.
type pistonEvents struct{ c *connection }

func (e *pistonEvents) StageStarted(stage string, _ int) {
	if stage == "run" {
		e.c.running.Store(true)
	}
	e.c.send(api.PistonStageMessage{Type: "stage", Stage: stage})
}

func (e *pistonEvents) Output(_ string, _ int, stream string, data []byte) {
	e.c.send(api.PistonData{Type: "data", Stream: stream, Data: string(data)})
}

func (e *pistonEvents) StageEnded(stage string, _ int, res api.StageResult) {
	if stage == "run" {
		e.c.running.Store(false)
	}
	st := pistonStage(&res)
	e.c.send(api.PistonExit{Type: "exit", Stage: stage, Code: st.Code, Signal: st.Signal})
}
