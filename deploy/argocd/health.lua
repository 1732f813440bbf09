-- Argo CD health check for kubellm.io/LLMDeployment.
--
-- Contract (Argo CD resource health customizations): Argo CD sets the global `obj` to the live
-- object and expects a table with `status` (Healthy | Progressing | Degraded | Suspended |
-- Missing | Unknown) and `message`. The script runs on gopher-lua (Lua 5.1) with Argo CD's
-- default libraries only: base, table, package and a reduced os (util/lua/lua.go). There is no
-- `string` and no `math` (Argo CD opens them only with resource.customizations.useOpenLibs),
-- so messages are built with `..` and tostring(); tests/unit/test_argocd_health.py and
-- tests/tools/test_argocd_cli.py run every case that way.
--
-- Rules, in order:
--   1. no status / no observedGeneration yet       -> Progressing (operator has not reconciled)
--   2. status.observedGeneration < generation,
--      or the Ready condition's observedGeneration
--      lags the generation                          -> Progressing (new spec not yet reconciled)
--   3. no Ready condition                           -> Progressing
--   4. Ready=True                                   -> Healthy
--   5. Ready=False, reason ScaledToZero             -> Healthy (spec.replicas is 0, as asked)
--   6. Ready=False/Unknown with a DEGRADED reason   -> Degraded (the user must change something)
--   7. Ready=Unknown, or False with a PROGRESSING
--      reason                                       -> Progressing
--   8. Ready=False with a reason this script does
--      not know                                     -> Degraded (report it rather than hide it
--                                                     behind "Progressing forever")
-- Messages come from the Ready condition: "<reason>: <message>". Ready carries the reason of
-- the first stage condition (LicenseApproved, Sized, CacheReady, Available) that is not True.
--
-- Edit this file, then regenerate argocd-cm-patch.yaml: python deploy/argocd/gen_cm_patch.py

-- Retrying cannot help until the spec, the policy or the cluster changes.
local DEGRADED = {
  -- kubellm.errors.PermanentError and its subclasses
  InvalidSpec = true,
  ModelNotFound = true,
  -- the repo's config.json / safetensors index / header cannot be read at this revision
  InvalidModelMetadata = true,
  GatedModel = true,
  LicenseDenied = true,
  DoesNotFit = true,
  Unsupported = true,
  -- spec.args/env/image asks for what kubellm owns or the licence decision does not cover
  NotPermitted = true,
  -- the GPUs exist but other deployments hold them (kubellm.sizing: free them or add nodes)
  GpusBusy = true,
  -- the plan needs a kind the cluster does not serve (multi-node: LeaderWorkerSet)
  KindNotServed = true,
  -- the apiserver refused a rendered object (422): a spec the CRD accepts but Kubernetes does not
  InvalidObject = true,
  -- the download Job gave up (CacheReady copies the Job's Failed reason)
  DownloadFailed = true,
  BackoffLimitExceeded = true,
  DeadlineExceeded = true,
  PodFailurePolicy = true,
  -- spec.evaluation.gate: Ready repeats Evaluated=False (below minPassRate, or it could not run)
  BelowThreshold = true,
  EvaluationFailed = true,
}

-- Work in progress, or a retry that is already scheduled.
local PROGRESSING = {
  -- stages still being evaluated (Ready=Unknown)
  NotEvaluated = true,
  NotPlanned = true,
  -- CacheReady=False while the download Job runs (it retries failed pods itself)
  Downloading = true,
  -- Available=False before the serving Deployment exists or while its pods start
  NoDeployment = true,
  NoReplicasReady = true,
  -- spec.evaluation.gate: the evaluation Job has not finished
  Evaluating = true,
  -- kubellm.errors.TemporaryError and its subclasses
  Retrying = true,
  HubUnavailable = true,
  ClusterError = true,
  Conflict = true,
  Forbidden = true,
  InternalError = true,
}

local function describe(condition)
  local reason = condition.reason
  local message = condition.message
  if reason ~= nil and reason ~= "" and message ~= nil and message ~= "" then
    return reason .. ": " .. message
  end
  if message ~= nil and message ~= "" then
    return message
  end
  if reason ~= nil and reason ~= "" then
    return reason
  end
  return "Ready is " .. tostring(condition.status)
end

local hs = {}
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status

if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubellm operator to reconcile this LLMDeployment"
  return hs
end

if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the kubellm operator to reconcile generation " .. tostring(generation)
    .. " (observed " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local ready = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition of generation " .. tostring(generation)
    .. " (it is for " .. tostring(ready.observedGeneration) .. ")"
  return hs
end

hs.message = describe(ready)
if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" and ready.reason == "ScaledToZero" then
  hs.status = "Healthy"
elseif DEGRADED[ready.reason] then
  hs.status = "Degraded"
elseif ready.status == "Unknown" or PROGRESSING[ready.reason] then
  hs.status = "Progressing"
else
  hs.status = "Degraded"
end
return hs
