# The same from a shell, with TRELLIS_URL and TRELLIS_TOKEN set: curl, then the trellis command.
H="Authorization: Token $TRELLIS_TOKEN"

# Validate without saving: every problem with its path, or the plan by layer.
curl -sf -H "$H" -H 'Content-Type: application/yaml' \
  --data-binary @docs/examples/ref-greet.yaml "$TRELLIS_URL/api/v1/workflows/validate/"
echo

trellis workflow validate docs/examples/ref-greet.yaml
trellis workflow push docs/examples/ref-greet.yaml
# --follow streams the run and exits 0 only when it COMPLETED.
trellis run start ref-greet --input name=alan --follow
trellis run list --workflow ref-greet --status COMPLETED
