-- Argo CD health check for argoproj.io/Application (optional; for the app-of-apps pattern).
--
-- Argo CD >= 1.8 reports every child Application as Healthy as soon as it exists, so sync waves
-- between Applications (examples/argocd/: the operator chart in wave -1, the models in wave 0)
-- order nothing: the parent moves to the next wave before the chart's CRDs and operator are up.
-- This check passes the child's own health through, so the parent waits for it.
--
-- It applies to EVERY Application in that Argo CD, which is why it ships in its own patch
-- (argocd-cm-app-of-apps-patch.yaml). Edit this file, then regenerate the patches:
--   python deploy/argocd/gen_cm_patch.py
--
-- A child reports Healthy before its first sync (nothing compared yet), so Healthy counts only
-- once the child is Synced and no sync operation of it is running; otherwise the parent would
-- move on at once (seen with Argo CD v3.6.2 in tests/e2e/test_argocd_sync.py). Any other health
-- (Progressing, Degraded, Missing, ...) is passed through as it is.
-- Argo CD opens only base/table/package/os for this script: no string or math functions.
local hs = {}
hs.status = "Progressing"
hs.message = "Waiting for the Application's health to be reported"
if obj.status == nil or obj.status.health == nil or obj.status.health.status == nil then
  return hs
end
local health = obj.status.health
if health.status == "Healthy" then
  local sync = "Unknown"
  if obj.status.sync ~= nil and obj.status.sync.status ~= nil then
    sync = obj.status.sync.status
  end
  if sync ~= "Synced" then
    hs.message = "Waiting for the Application to sync (it is " .. sync .. ")"
    return hs
  end
  local operation = obj.status.operationState
  if operation ~= nil and operation.phase == "Running" then
    hs.message = "Waiting for the Application's sync operation to finish"
    return hs
  end
end
hs.status = health.status
hs.message = health.message or ""
return hs
