"""The objects capture_reviews.py creates, updates and deletes (namespace ``shop``), written for this project; the
recorded AdmissionReviews of tests/data/admission/ came from these manifests."""

from __future__ import annotations

NAMESPACE = "shop"
INDEXER_DIGEST = "sha256:0e4a5fc1b8ef0a5ee8b1b7a3ec0d1bcde4b5b45c0da4ee1c7a4c3ddf1d0c3a11"

POD = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: checkout
  namespace: {NAMESPACE}
  labels: {{app: checkout, tier: backend}}
spec:
  serviceAccountName: default
  imagePullSecrets:
    - name: regcred
  nodeSelector:
    kubernetes.io/os: linux
  initContainers:
    - name: migrate
      image: registry.example.com/shop/checkout-migrations:2.4.1
      command: [/bin/migrate, up]
    - name: wait-for-db
      image: busybox:1.36.1
      command: [sh, -c, "until nc -z postgres 5432; do sleep 1; done"]
  containers:
    - name: checkout
      image: registry.example.com/shop/checkout:2.4.1
      imagePullPolicy: IfNotPresent
      ports:
        - containerPort: 8080
      volumeMounts:
        - {{name: model, mountPath: /models, readOnly: true}}
    - name: envoy
      image: docker.io/envoyproxy/envoy:v1.31.2
  volumes:
    - name: model
      image:
        reference: registry.example.com/shop/fraud-model:2024.11
        pullPolicy: IfNotPresent
"""

POD_GENERATE_NAME = f"""\
apiVersion: v1
kind: Pod
metadata:
  generateName: worker-
  namespace: {NAMESPACE}
  labels: {{app: worker}}
spec:
  containers:
    - name: worker
      image: ghcr.io/example/batch-worker:0.9.3
"""

DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: storefront
  namespace: {NAMESPACE}
  labels: {{app: storefront}}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: storefront}}
  template:
    metadata:
      labels: {{app: storefront}}
    spec:
      imagePullSecrets:
        - name: regcred
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - {{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}}
      containers:
        - name: web
          image: nginx:1.27.3
          ports:
            - containerPort: 80
        - name: app
          image: registry.example.com/shop/storefront:3.2.0
          imagePullPolicy: Always
        - name: metrics
          image: quay.io/prometheuscommunity/postgres-exporter:v0.15.0
"""

UNTAGGED = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {NAMESPACE}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: nginx
          ports:
            - containerPort: 80
"""

STATEFULSET = f"""\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: postgres
  namespace: {NAMESPACE}
spec:
  serviceName: postgres
  replicas: 1
  selector:
    matchLabels: {{app: postgres}}
  template:
    metadata:
      labels: {{app: postgres}}
    spec:
      initContainers:
        - name: init-permissions
          image: busybox:1.36.1
          command: [sh, -c, "chown -R 999:999 /var/lib/postgresql/data"]
          volumeMounts:
            - {{name: data, mountPath: /var/lib/postgresql/data}}
      containers:
        - name: postgres
          image: postgres:16.4
          volumeMounts:
            - {{name: data, mountPath: /var/lib/postgresql/data}}
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: [ReadWriteOnce]
        resources:
          requests:
            storage: 1Gi
"""

DAEMONSET = f"""\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-exporter
  namespace: {NAMESPACE}
spec:
  selector:
    matchLabels: {{app: node-exporter}}
  template:
    metadata:
      labels: {{app: node-exporter}}
    spec:
      hostNetwork: true
      tolerations:
        - operator: Exists
      containers:
        - name: node-exporter
          image: quay.io/prometheus/node-exporter:v1.8.2
          args: [--path.rootfs=/host]
"""

REPLICASET = f"""\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: cache
  namespace: {NAMESPACE}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: cache}}
  template:
    metadata:
      labels: {{app: cache}}
    spec:
      containers:
        - name: redis
          image: redis:7.2.4
"""

REPLICATIONCONTROLLER = f"""\
apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy-api
  namespace: {NAMESPACE}
spec:
  replicas: 1
  selector:
    app: legacy-api
  template:
    metadata:
      labels: {{app: legacy-api}}
    spec:
      containers:
        - name: api
          image: registry.example.com:5000/shop/legacy-api:1.0.9
"""

JOB = f"""\
apiVersion: batch/v1
kind: Job
metadata:
  name: reindex
  namespace: {NAMESPACE}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      initContainers:
        - name: fetch
          image: curlimages/curl:8.10.1
          args: [-fsSLo, /work/dump.sql, "https://backup.example.com/dump.sql"]
      containers:
        - name: reindex
          image: registry.example.com/shop/search-indexer@{INDEXER_DIGEST}
"""

CRONJOB = f"""\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly-report
  namespace: {NAMESPACE}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: report
              image: registry.example.com/shop/reports:1.12.0
            - name: uploader
              image: amazon/aws-cli:2.17.0
"""

PODTEMPLATE = f"""\
apiVersion: v1
kind: PodTemplate
metadata:
  name: batch-worker
  namespace: {NAMESPACE}
template:
  metadata:
    labels: {{app: batch-worker}}
  spec:
    containers:
      - name: worker
        image: ghcr.io/example/batch-worker:0.9.3
"""
