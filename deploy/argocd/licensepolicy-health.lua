-- Argo CD health check for kubellm.io/LicensePolicy.
--
-- A LicensePolicy is configuration read by the operator: it has no status and nothing to wait
-- for, so it is Healthy as soon as it exists (this also keeps it out of "Progressing" and lets a
-- sync wave that holds policies finish at once).
--
-- Edit this file, then regenerate argocd-cm-patch.yaml: python deploy/argocd/gen_cm_patch.py
local hs = {}
hs.status = "Healthy"
hs.message = "LicensePolicy is configuration; the operator applies it to LLMDeployments"
return hs
