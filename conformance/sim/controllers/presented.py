"""What the simulated cluster presents as installed: the objects a real kind + Kube-OVN + KubeVirt
cluster has before the suite starts, so version detection and readiness checks read them as they
would on a real cluster.

* namespaces ``default``, ``kube-system``, ``kube-public``, ``kube-node-lease``, ``kubevirt``;
* Kube-OVN (``dist/images/install.sh`` + ``yamls/webhook.yaml``): VPC ``ovn-cluster``, Subnets
  ``ovn-default`` (10.16.0.0/16, gateway 10.16.0.1, excludeIps [10.16.0.1]) and ``join``
  (100.64.0.0/16, the nodes' IP CRs ``node-<node>``); Deployments ``kube-system/kube-ovn-controller``
  (image ``docker.io/kubeovn/kube-ovn:<version>``, args include ``--keep-vm-ip=true|false``) and
  ``kube-system/kube-ovn-webhook`` (same tag; the *default release's* tag when ``webhook_policy``
  replaces the release's own policy with another; 0 ready replicas when ``webhook == "off"``), Service
  ``kube-ovn-webhook``, the
  ValidatingWebhookConfiguration ``kube-ovn-webhook`` with the entry ``pod-ip-validating.kube-ovn.io``
  (rules as upstream's ``yamls/webhook.yaml``: pods CREATE …; ``failurePolicy: Ignore``,
  ``timeoutSeconds: 5``, ``sideEffects: None``);
* KubeVirt: the ``kubevirt/kubevirt`` CR (``status.phase: Deployed``, ``observedKubeVirtVersion``,
  ``Available=True``) and Deployments ``virt-api``, ``virt-controller``, ``virt-operator``;
* component pods (host network, one per Deployment plus ``virt-handler-*`` per node) whose
  ``pods/log`` shows the component's log.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ... import versions
from .. import api
from .. import resources as r
from ..store import ApiError, ResourceType, now_rfc3339
from ..view import JSON, World
from . import kubeovn, scheduler

NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "kubevirt")


async def _ensure(world: World, rt: ResourceType, obj: JSON, user_agent: str) -> JSON:
    """Create ``obj`` unless it exists (create-or-skip) and return the stored object. A kube-apiserver
    drops the status of a created object whose kind has a status subresource: then the status is written
    through that subresource. (Over HTTP reads come from a watch cache that may not hold a just-created
    object yet, so callers use what this returns, not a fresh ``get``.)"""
    m = obj["metadata"]
    namespace = m.get("namespace", "")
    existing = world.client.get(rt, namespace, m["name"])
    if existing is not None:
        return existing
    client = world.client.as_agent(user_agent)
    try:
        created = await client.create(rt, obj)
    except ApiError as exc:
        if exc.code == 409:
            live = await client.get_live(rt, namespace, m["name"])
            if live is not None:
                return live
        raise
    if "status" in obj and "status" in rt.subresources and created.get("status") != obj["status"]:
        created["status"] = obj["status"]
        created = await api.replace(client, rt, created, subresource="status") or created
    return created


def _hash(text: str, n: int) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:n])


async def seed(world: World, *, webhook_configuration: bool = True) -> None:
    """Create the installed objects (see the module docstring); ``webhook_configuration=False`` leaves the
    webhook's Service and ValidatingWebhookConfiguration to whoever registers the webhook."""
    config = world.config
    k8s_ua = f"kube-apiserver/{config.kubernetes_version}"
    kubectl_ua = f"kubectl/{versions.K8S_VERSION} (linux/amd64) kubernetes/install"
    for ns in NAMESPACES:
        await _ensure(
            world,
            r.NAMESPACES,
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            },
            k8s_ua,
        )
    await scheduler.seed_nodes(world)
    await _seed_kube_ovn(world, kubectl_ua, webhook_configuration)
    await _seed_kubevirt(world)


def _deployment(name: str, namespace: str, image: str, args: list[str], ready: bool, labels: JSON) -> JSON:
    now = now_rfc3339()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"deployment.kubernetes.io/revision": "1"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": name, "image": image, "args": args, "imagePullPolicy": "IfNotPresent"}
                    ]
                },
            },
        },
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            **({"readyReplicas": 1, "availableReplicas": 1} if ready else {"unavailableReplicas": 1}),
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if ready else "False",
                    "reason": "MinimumReplicasAvailable" if ready else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability."
                    if ready
                    else "Deployment does not have minimum availability.",
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{name}-{_hash(name, 10)}" has successfully progressed.',
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
            ],
        },
    }


def _owner_ref(obj: JSON) -> JSON:
    return {"apiVersion": obj.get("apiVersion", "apps/v1"), "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


async def _pod_owner(world: World, name: str, namespace: str, image: str, labels: JSON) -> tuple[JSON, JSON]:
    """The controller that owns a component's pods, as a real cluster has it: a ReplicaSet
    ``<deployment>-<pod-template-hash>`` owned by the Deployment ``name``, or (virt-handler) the
    DaemonSet. Returns (owner reference, extra pod labels)."""
    ua = f"kube-controller-manager/{world.config.kubernetes_version}"
    template = {"metadata": {"labels": dict(labels)}, "spec": {"containers": [{"name": name, "image": image}]}}
    if name.startswith("virt-handler"):
        ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": namespace,
                                                                         "labels": dict(labels)},
              "spec": {"selector": {"matchLabels": dict(labels)}, "template": template}}
        return _owner_ref(await _ensure(world, r.DAEMONSETS, ds, ua)), {}
    deployment = world.client.get(r.DEPLOYMENTS, namespace, name) or await world.client.get_live(
        r.DEPLOYMENTS, namespace, name)
    assert deployment is not None, f"no Deployment {namespace}/{name} for its pods"
    pod_hash = _hash(name + "rs", 10)
    rs_labels = {**labels, "pod-template-hash": pod_hash}
    rs_name = f"{name}-{pod_hash}"
    rs: JSON = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": rs_name, "namespace": namespace, "labels": rs_labels,
                       "ownerReferences": [_owner_ref(deployment)]},
          "spec": {"replicas": 1, "selector": {"matchLabels": rs_labels},
                   "template": {**template, "metadata": {"labels": rs_labels}}}}
    return _owner_ref(await _ensure(world, r.REPLICASETS, rs, ua)), {"pod-template-hash": pod_hash}


async def _component_pod(
    world: World, name: str, namespace: str, image: str, labels: JSON, node: str
) -> None:
    pod_name = (
        f"{name}-{_hash(name + 'rs', 10)}-{_hash(name + node, 5)}"
        if not name.startswith("virt-handler")
        else f"{name}-{_hash(node, 5)}"
    )
    owner, extra_labels = await _pod_owner(world, name, namespace, image, labels)
    await _ensure(
        world,
        r.PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": namespace, "labels": {**labels, **extra_labels},
                         "ownerReferences": [owner]},
            "spec": {
                "hostNetwork": True,
                "nodeName": node,
                "restartPolicy": "Always",
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": name, "image": image}],
            },
            "status": {"phase": "Pending"},
        },
        f"kubelet/{world.config.kubernetes_version}",
    )


#: The dual-stack subnet of the simulated cluster (``SimConfig.dual_stack``), as upstream's dual-stack kind
#: targets size theirs (``/16`` and ``/112``; ``yamls/kind.yaml.j2``'s ``fd00:10:16::/112`` family).
DUAL_SUBNET = "ovn-dual"
DUAL_CIDR = "10.18.0.0/16,fd00:10:18::/112"
DUAL_GATEWAY = "10.18.0.1,fd00:10:18::1"


def _dual_subnet() -> JSON:
    return _subnet(DUAL_SUBNET, DUAL_CIDR, DUAL_GATEWAY, default=False, nat=True)


#: ``ovn-default`` of a dual-stack install (``SimConfig.ovn_default`` ``dual``): install.sh's ``DUAL_STACK``
#: block (``POD_CIDR``/``POD_GATEWAY``), the chart's ``networking.pods`` in ``clusters/kube-ovn-values-v2-dual.yaml``.
DUAL_DEFAULT_V6 = ("fd00:10:16::/112", "fd00:10:16::1")


def _system_subnet(name: str, prefix: str, *, default: bool, nat: bool,
                   v6: tuple[str, str] | None = None) -> JSON:
    """One of the Subnets kube-ovn creates at install (``ovn-default``, ``join``): ``<prefix>.0/16``, gateway
    ``.1``; with ``v6`` (CIDR, gateway) the dual-stack install's ``<v4>,<v6>`` and protocol ``Dual``."""
    cidr, gateway = f"{prefix}.0/16", f"{prefix}.1"
    if v6 is not None:
        cidr, gateway = f"{cidr},{v6[0]}", f"{gateway},{v6[1]}"
    return _subnet(name, cidr, gateway, default=default, nat=nat)


def _subnet(name: str, cidr: str, gateway: str, *, default: bool, nat: bool) -> JSON:
    """A Subnet of the default VPC as Kube-OVN presents it; ``Dual`` when ``cidr`` has two families."""
    return {
        "apiVersion": "kubeovn.io/v1",
        "kind": "Subnet",
        "metadata": {"name": name},
        "spec": {
            "cidrBlock": cidr,
            "gateway": gateway,
            "excludeIps": gateway.split(","),
            "vpc": kubeovn.DEFAULT_VPC,
            "provider": "ovn",
            "protocol": "Dual" if "," in cidr else "IPv4",
            "default": default,
            "gatewayType": "distributed",
            "natOutgoing": nat,
            "private": False,
            "enableLb": True,
            "gatewayNode": "",
        },
    }


async def _seed_kube_ovn(world: World, ua: str, webhook_configuration: bool) -> None:
    config = world.config
    version = config.kube_ovn_version
    image = f"docker.io/kubeovn/kube-ovn:{version}"
    webhook_tag = versions.KUBE_OVN_VERSION if config.overrides_policy else version
    webhook_image = f"docker.io/kubeovn/kube-ovn:{webhook_tag}"
    release = versions.kube_ovn_release(version)
    await _ensure(
        world,
        r.VPCS,
        {"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "ovn-cluster"}, "spec": {}},
        ua,
    )
    await _ensure(
        world, r.SUBNETS, _system_subnet(kubeovn.DEFAULT_SUBNET, "10.16.0", default=True, nat=True,
                                         v6=DUAL_DEFAULT_V6 if config.ovn_default == "dual" else None), ua
    )
    await _ensure(
        world, r.SUBNETS, _system_subnet(kubeovn.JOIN_SUBNET, "100.64.0", default=False, nat=False), ua
    )
    if config.dual_stack:
        await _ensure(world, r.SUBNETS, _dual_subnet(), ua)
    controller_ua = f"kube-ovn-controller/{version}"
    # Node join addresses (``handleAddNode``): IP CR ``node-<node>`` owned by the Node.
    for i, node in enumerate(scheduler.node_names(config.workers)):
        node_obj = world.client.get(r.NODES, "", node)
        if node_obj is None or world.client.get(r.IPS, "", f"node-{node}") is not None:
            continue
        ip = f"100.64.0.{i + 2}"
        mac = "00:00:00:" + ":".join(hashlib.sha256(node.encode()).hexdigest()[j : j + 2] for j in (0, 2, 4))
        await world.client.as_agent(controller_ua).create(
            r.IPS,
            {
                "apiVersion": "kubeovn.io/v1",
                "kind": "IP",
                "metadata": {
                    "name": f"node-{node}",
                    "finalizers": [kubeovn.FINALIZER],
                    "labels": {
                        kubeovn.SUBNET_LABEL: kubeovn.JOIN_SUBNET,
                        kubeovn.NODE_NAME_LABEL: node,
                        kubeovn.JOIN_SUBNET: "",
                        kubeovn.IP_RESERVED_LABEL: "false",
                    },
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_obj["metadata"]["uid"]}
                    ],
                },
                "spec": {
                    "podName": node,
                    "namespace": "",
                    "subnet": kubeovn.JOIN_SUBNET,
                    "nodeName": node,
                    "ipAddress": ip,
                    "v4IpAddress": ip,
                    "v6IpAddress": "",
                    "macAddress": mac,
                    "attachIps": [],
                    "attachMacs": [],
                    "attachSubnets": [],
                    "podType": "",
                },
            },
        )

        def annotate(obj: JSON, ip: str = ip, mac: str = mac, node: str = node) -> None:
            obj["metadata"].setdefault("annotations", {}).update(
                {
                    kubeovn.ALLOCATED: "true",
                    kubeovn.IP_ADDRESS: ip,
                    kubeovn.MAC_ADDRESS: mac,
                    kubeovn.CIDR: "100.64.0.0/16",
                    kubeovn.GATEWAY: "100.64.0.1",
                    kubeovn.LOGICAL_SWITCH: kubeovn.JOIN_SUBNET,
                    "ovn.kubernetes.io/port_name": f"node-{node}",
                    "ovn.kubernetes.io/chassis": hashlib.sha256(node.encode()).hexdigest()[:36],
                }
            )

        await api.mutate(world.client.as_agent(controller_ua), r.NODES, "", node, annotate)
        if world.ipam is not None:
            world.ipam.add_or_update_subnet(
                kubeovn.JOIN_SUBNET, "100.64.0.0/16", "100.64.0.1", ["100.64.0.1"]
            )
            world.ipam.get_static_address(node, f"node-{node}", ip, mac, kubeovn.JOIN_SUBNET)
    args = [
        "--default-cidr=10.16.0.0/16",
        "--default-gateway=10.16.0.1",
        "--default-exclude-ips=",
        "--node-switch-cidr=100.64.0.0/16",
        "--network-type=geneve",
        "--default-interface-name=",
        f"--keep-vm-ip={'true' if config.keep_vm_ip else 'false'}",
        "--gc-interval=360",  # install.sh GC_INTERVAL=360 (L128 at v1.13.14); the sim runs it on its clock
        "--enable-lb=true",
        "--enable-np=true",
        "--enable-eip-snat=true",
        "--log_file=/var/log/kube-ovn/kube-ovn-controller.log",
        "--v=3",
    ]
    if release.releases_stopped_vm_ip:  # the flag arrives with v1.14.0 (#4773)
        args.insert(7, "--enable-live-migration-optimize=true")
    system_ns = "kube-system"
    await _ensure(
        world,
        r.DEPLOYMENTS,
        _deployment("kube-ovn-controller", system_ns, image, args, True, {"app": "kube-ovn-controller"}),
        ua,
    )
    webhook_on = config.webhook == "on"
    await _ensure(
        world,
        r.DEPLOYMENTS,
        _deployment(
            "kube-ovn-webhook",
            system_ns,
            webhook_image,
            ["--port=8443", "--health-probe-port=8080", "--v=3"],
            webhook_on,
            {"app": "kube-ovn-webhook"},
        ),
        ua,
    )
    if webhook_configuration:
        await _ensure(
            world,
            r.SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kube-ovn-webhook", "namespace": system_ns},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": "10.96.0.100",
                    "clusterIPs": ["10.96.0.100"],
                    "ports": [
                        {"name": "kube-ovn-webhook", "protocol": "TCP", "port": 443, "targetPort": 8443}
                    ],
                    "selector": {"app": "kube-ovn-webhook"},
                    "sessionAffinity": "None",
                },
            },
            ua,
        )
        await _ensure(
            world,
            r.VWC,
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {
                    "name": "kube-ovn-webhook",
                    "annotations": {
                        "cert-manager.io/inject-ca-from": "kube-system/kube-ovn-webhook-serving-cert"
                    },
                },
                "webhooks": [
                    {
                        "name": "pod-ip-validating.kube-ovn.io",
                        "rules": [
                            {
                                "operations": ["CREATE"],
                                "apiGroups": ["apps"],
                                "apiVersions": ["v1"],
                                "resources": ["deployments", "statefulsets", "daemonsets"],
                                "scope": "*",
                            },
                            {
                                "operations": ["CREATE"],
                                "apiGroups": ["batch"],
                                "apiVersions": ["v1"],
                                "resources": ["jobs", "cronjobs"],
                                "scope": "*",
                            },
                            {
                                "operations": ["CREATE"],
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "resources": ["pods"],
                                "scope": "*",
                            },
                            {
                                "operations": ["CREATE", "UPDATE", "DELETE"],
                                "apiGroups": ["kubeovn.io"],
                                "apiVersions": ["v1"],
                                "resources": [
                                    "subnets",
                                    "vpcs",
                                    "vips",
                                    "vpc-nat-gateways",
                                    "iptables-eips",
                                    "iptables-dnat-rules",
                                    "iptables-snat-rules",
                                    "iptables-fip-rules",
                                ],
                                "scope": "*",
                            },
                        ],
                        "objectSelector": {
                            "matchExpressions": [
                                {"key": "app", "operator": "NotIn", "values": ["kube-ovn-webhook"]}
                            ]
                        },
                        "namespaceSelector": {},
                        "failurePolicy": "Ignore",
                        "matchPolicy": "Equivalent",
                        "admissionReviewVersions": ["v1", "v1beta1"],
                        "sideEffects": "None",
                        "timeoutSeconds": 5,
                        "clientConfig": {
                            "service": {
                                "namespace": system_ns,
                                "name": "kube-ovn-webhook",
                                "path": "/validating",
                                "port": 443,
                            },
                            "caBundle": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
                        },
                    }
                ],
            },
            ua,
        )
    cp = scheduler.CONTROL_PLANE
    await _component_pod(world, "kube-ovn-controller", system_ns, image, {"app": "kube-ovn-controller"}, cp)
    if webhook_on:
        await _component_pod(
            world, "kube-ovn-webhook", system_ns, webhook_image, {"app": "kube-ovn-webhook"}, cp
        )


def _workloads(config: Any) -> JSON:
    """``spec.workloads`` as kovc's kind install sets it (none when the placement is switched off)."""
    selector = scheduler.virt_handler_selector(config)
    return {} if selector is None else {"workloads": {"nodePlacement": {"nodeSelector": selector}}}


async def _seed_kubevirt(world: World) -> None:
    config = world.config
    kv = config.kubevirt_version
    ua = f"virt-operator/{kv}"
    now = now_rfc3339()
    await _ensure(
        world,
        r.KUBEVIRTS,
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "KubeVirt",
            "metadata": {
                "name": "kubevirt",
                "namespace": "kubevirt",
                "finalizers": ["foregroundDeleteKubeVirt"],
            },
            "spec": {
                "certificateRotateStrategy": {},
                "imagePullPolicy": "IfNotPresent",
                "configuration": {"developerConfiguration": {"useEmulation": True}},
                "customizeComponents": {},
                "infra": {"replicas": 1},
                **_workloads(config),
                "workloadUpdateStrategy": {},
            },
            "status": {
                "phase": "Deployed",
                "observedKubeVirtVersion": kv,
                "observedKubeVirtRegistry": "quay.io/kubevirt",
                "targetKubeVirtVersion": kv,
                "targetKubeVirtRegistry": "quay.io/kubevirt",
                "operatorVersion": kv,
                "observedGeneration": 2,
                "defaultArchitecture": "amd64",
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "reason": "AllComponentsReady",
                        "message": "All components are ready.",
                        "lastProbeTime": now,
                        "lastTransitionTime": now,
                    },
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "AllComponentsReady",
                        "message": "All components are ready.",
                        "lastProbeTime": now,
                        "lastTransitionTime": now,
                    },
                    {
                        "type": "Degraded",
                        "status": "False",
                        "reason": "AllComponentsReady",
                        "message": "All components are ready.",
                        "lastProbeTime": now,
                        "lastTransitionTime": now,
                    },
                    {
                        "type": "Created",
                        "status": "True",
                        "reason": "AllResourcesCreated",
                        "message": "All resources were created.",
                        "lastProbeTime": now,
                        "lastTransitionTime": now,
                    },
                ],
            },
        },
        ua,
    )
    for component in ("virt-api", "virt-controller", "virt-operator"):
        image = f"quay.io/kubevirt/{component}:{kv}"
        labels = {"kubevirt.io": component}
        await _ensure(world, r.DEPLOYMENTS, _deployment(component, "kubevirt", image, [], True, labels), ua)
        await _component_pod(world, component, "kubevirt", image, labels, scheduler.CONTROL_PLANE)
    for node in scheduler.node_names(config.workers):
        await _component_pod(
            world,
            "virt-handler",
            "kubevirt",
            f"quay.io/kubevirt/virt-handler:{kv}",
            {"kubevirt.io": "virt-handler"},
            node,
        )
