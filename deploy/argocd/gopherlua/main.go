// Command healthrun runs an Argo CD health script on gopher-lua, the Lua VM Argo CD embeds.
//
// Usage: go run . SCRIPT.lua < objects.json > results.json
//
// objects.json is a JSON list of Kubernetes objects; each is handed to the script as the global
// `obj` (nested tables, numbers as Lua numbers) in a fresh VM with only the base, package, table,
// string and math libraries, and the returned table's status and message are printed as a JSON
// list. tests/unit/test_argocd_health.py compares them with the PUC Lua 5.1 results.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
)

type result struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch t := v.(type) {
	case map[string]interface{}:
		table := L.NewTable()
		for key, item := range t {
			table.RawSetString(key, toLua(L, item))
		}
		return table
	case []interface{}:
		table := L.NewTable()
		for _, item := range t {
			table.Append(toLua(L, item))
		}
		return table
	case float64:
		return lua.LNumber(t)
	case string:
		return lua.LString(t)
	case bool:
		return lua.LBool(t)
	}
	return lua.LNil
}

func run(script string, obj interface{}) result {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	libs := []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	}
	for _, lib := range libs {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return result{Error: err.Error()}
	}
	table, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return result{Error: "the script did not return a table"}
	}
	out := result{}
	if s, ok := table.RawGetString("status").(lua.LString); ok {
		out.Status = string(s)
	}
	if m, ok := table.RawGetString("message").(lua.LString); ok {
		out.Message = string(m)
	}
	return out
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: healthrun SCRIPT.lua < objects.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var objects []interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, "objects.json:", err)
		os.Exit(1)
	}
	results := make([]result, 0, len(objects))
	for _, obj := range objects {
		results = append(results, run(string(script), obj))
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
