// The thread streaming protocol through the official JS client, against the graphyard at GRAPHYARD_URL.
// Prints one JSON line of findings for the Python test to check; exits non-zero on any failure.
import { Client } from "@langchain/langgraph-sdk";

const client = new Client({ apiUrl: process.env.GRAPHYARD_URL });
const deadline = (ms, what) =>
  new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms).unref());
const within = (promise, what) => Promise.race([promise, deadline(45000, what)]);

async function valuesRun() {
  const thread = client.threads.stream({ assistantId: "slow" });
  try {
    await within(thread.run.start({ input: { delay: 0 } }), "run.start");
    const output = await within(thread.output, "output");
    return { threadId: thread.threadId, output };
  } finally {
    await thread.close();
  }
}

async function interruptRun() {
  const thread = client.threads.stream({ assistantId: "ask" });
  try {
    await within(thread.run.start({ input: { question: "js?" } }), "run.start");
    await within(
      (async () => {
        while (!thread.interrupted) await new Promise((r) => setTimeout(r, 20));
      })(),
      "the interrupt"
    );
    const interrupt = thread.interrupts[0];
    await within(
      thread.input.respond({ interrupt_id: interrupt.interruptId, namespace: interrupt.namespace, response: "from js" }),
      "input.respond"
    );
    const state = await within(
      (async () => {
        for (;;) {
          const s = await client.threads.getState(thread.threadId);
          if (s.values.steps && s.values.steps.includes("finish")) return s.values;
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      "the resumed run"
    );
    return { payload: interrupt.payload, state };
  } finally {
    await thread.close();
  }
}

async function messagesRun() {
  const thread = client.threads.stream({ assistantId: "chat" });
  try {
    // Projections opened before run.start see the whole run (the client drops events it already had).
    const messages = thread.messages;
    await within(thread.run.start({ input: { messages: [{ role: "user", content: "hi" }] } }), "run.start");
    const texts = [];
    await within(
      (async () => {
        for await (const message of messages) {
          texts.push(await message.text);
          break;
        }
      })(),
      "messages"
    );
    return { texts };
  } finally {
    await thread.close();
  }
}

const found = { values: await valuesRun(), interrupt: await interruptRun(), messages: await messagesRun() };
console.log(JSON.stringify(found));
