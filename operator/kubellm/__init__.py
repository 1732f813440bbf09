"""kubellm: a Kubernetes operator for self-hosting open LLMs.

It answers four questions from one ``LLMDeployment``: may we run this model (licence policy), how
many GPUs of which kind it needs (sizing), where the weights come from (a shared, content-addressed
cache filled from the Hugging Face Hub), and how to serve it (vLLM or TGI).

Layers (dependencies point down only; see ARCHITECTURE.md):

    handlers        kopf registration, settings, error mapping         (imports kopf)
    reconcile       observe -> plan -> apply -> status                 (no kopf)
    k8s, modelinfo  adapters: kubernetes client / huggingface_hub
    planner         facts + policy + inventory -> Plan                 (pure)
    license, sizing, runtimes, naming, conditions, catalog             (pure, data-driven)
    api, errors, facts
"""

__version__ = "0.1.0"

API_GROUP = "kubellm.io"
API_VERSION = "v1alpha1"
FIELD_MANAGER = "kubellm"
