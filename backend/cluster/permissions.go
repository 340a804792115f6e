package cluster

// Permissions are the NATS subjects one role needs: what it publishes to
// (JetStream API requests included) and what it subscribes to. A NATS
// user given exactly these can do its role's work and nothing else: a
// worker cannot submit jobs or cancel them, a gateway cannot publish a
// job's events (forge a result) or acknowledge jobs, neither can purge or
// delete the stream. docs/deployment.md prints them as a server
// configuration; TestSecuredNATSLeastPrivilege runs a gateway and a
// worker with exactly these.
type Permissions struct {
	Publish   []string
	Subscribe []string
}

// jetStreamSetup is what both roles publish to create or update the job
// stream and the models bucket (each process ensures they exist with its
// settings when it starts), to read a job's message, and to read the
// registry. Removing any one entry makes TestSecuredNATSLeastPrivilege
// fail; so does any entry below.
var jetStreamSetup = []string{
	"$JS.API.INFO",
	"$JS.API.STREAM.CREATE.REWORD_JOBS",
	"$JS.API.STREAM.UPDATE.REWORD_JOBS",
	"$JS.API.STREAM.MSG.GET.REWORD_JOBS",
	"$JS.API.STREAM.CREATE.KV_reword_models",
	"$JS.API.STREAM.UPDATE.KV_reword_models",
	"$JS.API.CONSUMER.CREATE.KV_reword_models.>",
	"$JS.API.CONSUMER.DELETE.KV_reword_models.>",
	"$JS.API.DIRECT.GET.KV_reword_models.>",
}

// GatewayPermissions: publish jobs and cancels, follow the stream and the
// workers' consumer for queue positions, take cancelled jobs out of the
// stream; receive the jobs' events and JetStream's max-deliveries
// advisory.
var GatewayPermissions = Permissions{
	Publish: append([]string{
		jobSubjectPrefix + ">",
		cancelSubjectPrefix + ">",
		"$JS.API.STREAM.MSG.DELETE.REWORD_JOBS",
		"$JS.API.CONSUMER.INFO.REWORD_JOBS.>",
	}, jetStreamSetup...),
	Subscribe: []string{
		eventSubjectPrefix + ">",
		"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.REWORD_JOBS.>",
		"_INBOX.>",
	},
}

// WorkerPermissions: create its model's consumer, pull and acknowledge
// jobs, publish their events, register its model; receive cancels.
var WorkerPermissions = Permissions{
	Publish: append([]string{
		eventSubjectPrefix + ">",
		"$KV.reword_models.>",
		"$JS.API.CONSUMER.CREATE.REWORD_JOBS.>",
		"$JS.API.CONSUMER.MSG.NEXT.REWORD_JOBS.>",
		"$JS.ACK.REWORD_JOBS.>",
	}, jetStreamSetup...),
	Subscribe: []string{
		cancelSubjectPrefix + ">",
		"_INBOX.>",
	},
}
