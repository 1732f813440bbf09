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
local hs = {}
hs.status = "Progressing"
hs.message = "Waiting for the Application's health to be reported"
if obj.status ~= nil and obj.status.health ~= nil and obj.status.health.status ~= nil then
  hs.status = obj.status.health.status
  hs.message = obj.status.health.message or ""
end
return hs
