# The stanza every image of the stack ends with: deploy/stage.sh appends it to each
# deploy/<service>/Dockerfile, the service's name filled in.
# Labels last, so that another label value (tests pass com.ferry.test=<test id>) reuses
# the cached layers above. FERRY_LABEL_*: one label everything of one stack carries.
ARG FERRY_LABEL_KEY=com.ferry.stack
ARG FERRY_LABEL_VALUE=ferry
LABEL org.opencontainers.image.title="ferry-@SERVICE@" \
      com.ferry.project="ferry" \
      com.ferry.service="@SERVICE@" \
      "${FERRY_LABEL_KEY}"="${FERRY_LABEL_VALUE}"
