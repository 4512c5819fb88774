/*
 * A Kafka-protocol cluster for tests, without a JVM: librdkafka's built-in
 * mock cluster (rdkafka_mock.h, Debian librdkafka-dev) in a process of its
 * own, so that Node clients such as kafkajs talk to it over TCP.
 *
 * Usage: kafka-mock [broker_count]   (default 1; broker ids are 1..count)
 * Prints "BOOTSTRAP host:port,..." once, then serves stdin line by line:
 *   down <id> | up <id> | topic <name> <partitions> |
 *   fail <api_key> <error_code> <count> | quit
 * answering "OK" or "ERR <reason>" to each. EOF (the parent died) exits too.
 *
 * The brokers bind 127.0.0.1 only (INADDR_LOOPBACK in rdkafka_mock.c).
 * Auto-created topics get 4 partitions; this librdkafka has no API to change
 * that default, hence the "topic" command. "fail" answers the next <count>
 * requests of that API (on any broker) with that Kafka error code, as a real
 * broker answers an ACL denial or a coordinator move.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reply(rd_kafka_resp_err_t err) {
        if (err)
                printf("ERR %s\n", rd_kafka_err2str(err));
        else
                printf("OK\n");
        /* stdout is a pipe, hence block-buffered: the parent awaits this line. */
        fflush(stdout);
}

static rd_kafka_resp_err_t run(rd_kafka_mock_cluster_t *mcluster,
                               const char *line) {
        char name[256];
        int id, partitions, api_key, code, count;

        if (sscanf(line, "down %d", &id) == 1)
                return rd_kafka_mock_broker_set_down(mcluster, id);
        if (sscanf(line, "up %d", &id) == 1)
                return rd_kafka_mock_broker_set_up(mcluster, id);
        if (sscanf(line, "topic %255s %d", name, &partitions) == 2)
                /* Replication is capped at the broker count by the mock. */
                return rd_kafka_mock_topic_create(mcluster, name, partitions, 3);
        if (sscanf(line, "fail %d %d %d", &api_key, &code, &count) == 3) {
                rd_kafka_resp_err_t errors[64];
                if (count < 1 || count > 64)
                        return RD_KAFKA_RESP_ERR__INVALID_ARG;
                for (int i = 0; i < count; i++)
                        errors[i] = (rd_kafka_resp_err_t)code;
                rd_kafka_mock_push_request_errors_array(
                    mcluster, (int16_t)api_key, (size_t)count, errors);
                return RD_KAFKA_RESP_ERR_NO_ERROR;
        }
        return RD_KAFKA_RESP_ERR__INVALID_ARG;
}

int main(int argc, char **argv) {
        int broker_cnt = argc > 1 ? atoi(argv[1]) : 1;
        char errstr[256], line[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *mcluster;

        /* The handle only hosts the cluster's thread and never connects, so
         * its "no bootstrap.servers" warning is noise. */
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "rd_kafka_new: %s\n", errstr);
                return 1;
        }
        mcluster = rd_kafka_mock_cluster_new(rk, broker_cnt);
        if (!mcluster) {
                fprintf(stderr, "rd_kafka_mock_cluster_new failed\n");
                rd_kafka_destroy(rk);
                return 1;
        }
        printf("BOOTSTRAP %s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
        fflush(stdout);

        while (fgets(line, sizeof(line), stdin) && strncmp(line, "quit", 4))
                reply(run(mcluster, line));

        rd_kafka_mock_cluster_destroy(mcluster);
        rd_kafka_destroy(rk);
        return 0;
}
