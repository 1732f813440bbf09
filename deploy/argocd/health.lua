-- Argo CD health check for kubellm.io/LLMDeployment.
--
-- Contract (Argo CD resource health customizations): Argo CD sets the global `obj` to the live
-- object and expects a table with `status` (Healthy | Progressing | Degraded | Suspended |
-- Missing | Unknown) and `message`. The script must run on gopher-lua (Lua 5.1, no os/io).
--
-- Rules, in order:
--   1. no status / no observedGeneration yet       -> Progressing (operator has not reconciled)
--   2. status.observedGeneration < generation,
--      or the Ready condition's observedGeneration
--      lags the generation                          -> Progressing (new spec not yet reconciled)
--   3. no Ready condition                           -> Progressing
--   4. Ready=True                                   -> Healthy
--   5. Ready=False/Unknown with a permanent reason  -> Degraded (the user must change something)
--   6. Ready=Unknown, or False with a transient
--      reason                                       -> Progressing
--   7. Ready=False with a reason this script does
--      not know                                     -> Degraded (report it rather than hide it
--                                                     behind "Progressing forever")
-- Messages come from the Ready condition: "<reason>: <message>".
--
-- Edit this file, then regenerate argocd-cm-patch.yaml: python deploy/argocd/gen_cm_patch.py

-- Reasons after which retrying cannot help until the spec, the policy or the cluster changes
-- (kubellm.errors.PermanentError and its subclasses, plus the download Job giving up).
local PERMANENT = {
  InvalidSpec = true,
  ModelNotFound = true,
  GatedModel = true,
  LicenseDenied = true,
  DoesNotFit = true,
  Unsupported = true,
  DownloadFailed = true,
}

-- Reasons of work in progress or of a retry that is already scheduled.
local TRANSIENT = {
  Pending = true,
  Reconciling = true,
  ResolvingModel = true,
  CacheDownloading = true,
  CachePending = true,
  RollingOut = true,
  ScalingUp = true,
  WaitingForGPUs = true,
  Retrying = true,
  HubUnavailable = true,
  ClusterError = true,
  -- reasons a stage may copy from the Deployment it rolls out (apps/v1 Progressing/Available)
  MinimumReplicasUnavailable = true,
  NewReplicaSetCreated = true,
  FoundNewReplicaSet = true,
  ReplicaSetUpdated = true,
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
  hs.message = string.format(
    "Waiting for the kubellm operator to reconcile generation %d (observed %d)",
    generation, status.observedGeneration)
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
  hs.message = string.format(
    "Waiting for the Ready condition of generation %d (it is for %d)",
    generation, ready.observedGeneration)
  return hs
end

hs.message = describe(ready)
if ready.status == "True" then
  hs.status = "Healthy"
elseif PERMANENT[ready.reason] then
  hs.status = "Degraded"
elseif ready.status == "Unknown" or TRANSIENT[ready.reason] then
  hs.status = "Progressing"
else
  hs.status = "Degraded"
end
return hs
