-- Argo CD health check for bitnami.com/SealedSecret (sealed-secrets-rs and upstream controllers).
-- Reads the `Synced` condition the controller writes with --update-status (the default):
--   Healthy      Synced=True and status.observedGeneration == metadata.generation
--   Degraded     Synced=False for the current generation, with the controller's message
--   Progressing  anything else: no status yet, or the controller has not yet processed the
--                newest spec (a stale False is not reported as Degraded while the new
--                generation is being unsealed)
local hs = {}
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if obj.status ~= nil and obj.status.conditions ~= nil then
  local observed = obj.status.observedGeneration
  local current = observed ~= nil and generation ~= nil and observed == generation
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Synced" then
      if not current then
        hs.status = "Progressing"
        hs.message = "Waiting for the controller to unseal the latest generation"
        return hs
      end
      if condition.status == "True" then
        hs.status = "Healthy"
        hs.message = "Secret unsealed"
        return hs
      end
      if condition.status == "False" then
        hs.status = "Degraded"
        hs.message = condition.message or "Failed to unseal"
        return hs
      end
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for the controller to unseal the SealedSecret"
return hs
